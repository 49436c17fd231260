use super::*;
use crate::superblock::parse_integrity_superblock;
use crate::superblock::tests::superblock_bytes;

/// Header values of a 1 GiB disk formatted by libcryptsetup 2.6.1 with our parameters.
pub(crate) fn params() -> LuksParams {
    LuksParams {
        uuid: Uuid::parse_str("0b3c5d1e-2f40-4a5b-8c6d-7e8f90a1b2c3").unwrap(),
        data_offset_sectors: 32768,
        sector_size: 4096,
        cipher: "aes".to_owned(),
        cipher_mode: "xts-plain64".to_owned(),
        integrity: "hmac(sha256)".to_owned(),
        tag_size: 32,
        key_size: 96,
    }
}

/// The versions each kernel the harness boots lists (`dmsetup targets` in the guest, issue 25):
/// Debian 11's 5.10.0-46, Debian 12's 6.1.0-57, Debian 13's 6.12.118.
pub(crate) const KERNELS: [(&str, TargetVersion, TargetVersion); 3] = [
    (
        "5.10",
        TargetVersion::new(1, 6, 0),
        TargetVersion::new(1, 22, 0),
    ),
    (
        "6.1",
        TargetVersion::new(1, 10, 0),
        TargetVersion::new(1, 24, 0),
    ),
    (
        "6.12",
        TargetVersion::new(1, 14, 0),
        TargetVersion::new(1, 28, 0),
    ),
];

/// The superblock libcryptsetup 2.6.1 formats on all three kernels: version 4, flags
/// `FIXED_PADDING` only (read back in the guest).
fn formatted_superblock(provided: u64) -> IntegritySuperblock {
    let mut b = superblock_bytes(provided);
    b[8] = 4;
    parse_integrity_superblock(&b).unwrap()
}

/// The integrity table is libcryptsetup 2.6.1's, sized from the superblock, with the options
/// the superblock records, on every kernel tested; an unknown version builds the same.
#[test]
fn integrity_table_matches_libcryptsetup_on_every_kernel() {
    let sb = formatted_superblock(2_031_880);
    let pinned = [
        ("5.10", "253:0 32768 32 D 2 block_size:4096 fix_padding"),
        ("6.1", "253:0 32768 32 D 2 block_size:4096 fix_padding"),
        ("6.12", "253:0 32768 32 D 2 block_size:4096 fix_padding"),
    ];
    for ((kernel, integrity, _), (pinned_kernel, line)) in KERNELS.iter().zip(pinned) {
        assert_eq!(*kernel, pinned_kernel);
        let t = integrity_table("253:0", &params(), &sb, Some(*integrity)).unwrap();
        assert_eq!(t.length, 2_031_880, "{kernel}");
        assert_eq!(t.target, "integrity");
        assert_eq!(t.params.as_str(), line, "{kernel}");
        assert!(!t.secret);
    }
    let t = integrity_table("253:0", &params(), &sb, None).unwrap();
    assert_eq!(
        t.params.as_str(),
        "253:0 32768 32 D 2 block_size:4096 fix_padding"
    );
}

/// A superblock formatted with `fix_hmac` gets it in the table where the kernel parses it
/// (dm-integrity 1.7.0 on), and is refused, naming the version, on 5.10's 1.6.0.
#[test]
fn fix_hmac_follows_the_superblock_and_needs_1_7() {
    let mut sb = formatted_superblock(2_031_880);
    sb.flags |= SB_FLAG_FIXED_HMAC;
    for (kernel, integrity, _) in &KERNELS[1..] {
        let t = integrity_table("253:0", &params(), &sb, Some(*integrity)).unwrap();
        assert_eq!(
            t.params.as_str(),
            "253:0 32768 32 D 3 block_size:4096 fix_padding fix_hmac",
            "{kernel}"
        );
    }
    let e = integrity_table("253:0", &params(), &sb, Some(KERNELS[0].1)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "build the integrity table: this kernel's dm-integrity target is version 1.6.0; \
         scratchcrypt needs 1.7.0 or newer (Linux 5.11) for fix_hmac, which the superblock records"
    );
}

/// The legacy metadata padding (a superblock without `FIXED_PADDING`) and a dm-integrity older
/// than 1.5.0 are refused: our write accounting describes the fixed layout only.
#[test]
fn legacy_padding_and_old_integrity_are_refused() {
    let mut sb = formatted_superblock(8);
    sb.flags = 0;
    assert!(matches!(
        integrity_table("253:0", &params(), &sb, None),
        Err(TableError::LegacyPadding { flags: 0 })
    ));
    let sb = formatted_superblock(8);
    let e =
        integrity_table("253:0", &params(), &sb, Some(TargetVersion::new(1, 4, 0))).unwrap_err();
    assert!(matches!(e, TableError::Unsupported(ref u) if u.needed == TargetVersion::new(1, 5, 0)));
    assert!(e.to_string().contains("version 1.4.0"), "{e}");
    assert!(e.to_string().contains("fix_padding"), "{e}");
}

/// The kernel check passes the three tested kernels and unknown versions, and refuses an old
/// target before anything is written, naming its version and the feature.
#[test]
fn kernel_check_names_the_version_and_the_feature() {
    for (kernel, integrity, crypt) in KERNELS {
        let k = KernelTargets {
            integrity: Some(integrity),
            crypt: Some(crypt),
        };
        assert_eq!(check_kernel(&k), Ok(()), "{kernel}");
    }
    assert_eq!(check_kernel(&KernelTargets::default()), Ok(()));
    // Linux 5.4 before the fix_padding backport: dm-integrity 1.4.0.
    let old = KernelTargets {
        integrity: Some(TargetVersion::new(1, 4, 0)),
        crypt: Some(TargetVersion::new(1, 19, 0)),
    };
    let e = check_kernel(&old).unwrap_err();
    assert_eq!(e.target, "integrity");
    assert_eq!(
        e.to_string(),
        "this kernel's dm-integrity target is version 1.4.0; scratchcrypt needs 1.5.0 or newer \
         (Linux 5.6) for the fixed metadata padding (fix_padding)"
    );
    // Linux 4.11: dm-crypt 1.15.0 has the keyring but no AEAD.
    let old = KernelTargets {
        integrity: None,
        crypt: Some(TargetVersion::new(1, 15, 0)),
    };
    let e = check_kernel(&old).unwrap_err();
    assert_eq!(
        (e.target, e.needed),
        ("crypt", TargetVersion::new(1, 16, 0))
    );
    let old = KernelTargets {
        integrity: None,
        crypt: Some(TargetVersion::new(1, 16, 0)),
    };
    assert!(check_kernel(&old)
        .unwrap_err()
        .to_string()
        .contains("sector_size"));
}

/// Keyring references from dm-crypt 1.18.1 on (libcryptsetup's threshold), and when unknown.
#[test]
fn keyring_reference_follows_libcryptsetups_threshold() {
    for (kernel, _, crypt) in KERNELS {
        assert!(keyring_supported(Some(crypt)), "{kernel}");
    }
    assert!(keyring_supported(None));
    assert!(keyring_supported(Some(TargetVersion::new(1, 18, 1))));
    assert!(!keyring_supported(Some(TargetVersion::new(1, 18, 0))));
    assert!(!keyring_supported(Some(TargetVersion::new(1, 17, 0))));
}

/// `DM_LIST_VERSIONS` answers are searched by name; unlisted targets are unknown.
#[test]
fn kernel_targets_come_from_the_list() {
    let list = [
        ("linear".to_owned(), TargetVersion::new(1, 4, 0)),
        ("crypt".to_owned(), TargetVersion::new(1, 22, 0)),
    ];
    let k = KernelTargets::from_list(&list);
    assert_eq!(k.crypt, Some(TargetVersion::new(1, 22, 0)));
    assert_eq!(k.integrity, None);
    assert_eq!(TargetVersion::new(1, 10, 0).to_string(), "1.10.0");
    assert!(TargetVersion::new(1, 10, 0) > TargetVersion::new(1, 9, 3));
}

/// The crypt table names the key in the keyring like cryptsetup and is not secret then.
#[test]
fn crypt_table_with_keyring_key_matches_libcryptsetup() {
    let p = params();
    let sb = parse_integrity_superblock(&superblock_bytes(2_031_880)).unwrap();
    let desc = keyring_description(&p.uuid);
    let key = KeyRef::Keyring {
        description: &desc,
        size: 96,
    };
    for (kernel, _, crypt) in KERNELS {
        let t = crypt_table("254:0", &p, &sb, &key, Some(crypt)).unwrap();
        assert_eq!(t.length, 2_031_880);
        assert_eq!(
            t.params.as_str(),
            "capi:authenc(hmac(sha256),xts(aes))-plain64 \
             :96:logon:cryptsetup:0b3c5d1e-2f40-4a5b-8c6d-7e8f90a1b2c3-d0 \
             0 254:0 0 2 sector_size:4096 integrity:32:aead",
            "{kernel}"
        );
        assert!(!t.secret);
    }
    // dm-crypt 1.16.0 (Linux 4.12 before sector_size) is refused.
    let e = crypt_table("254:0", &p, &sb, &key, Some(TargetVersion::new(1, 16, 0))).unwrap_err();
    assert!(matches!(e, TableError::Unsupported(_)), "{e}");
}

/// The hex fallback puts the key in the table, marks it secret, and Debug hides it.
#[test]
fn crypt_table_with_hex_key_is_secret() {
    let p = params();
    let sb = parse_integrity_superblock(&superblock_bytes(8)).unwrap();
    let mut bytes = [0u8; 96];
    bytes[0] = 0xa5;
    bytes[95] = 0x0f;
    let k = VolumeKey::from_bytes(&bytes).unwrap();
    let t = crypt_table("254:1", &p, &sb, &KeyRef::Hex(&k), None).unwrap();
    let hex = format!("a5{}0f", "00".repeat(94));
    assert_eq!(
        t.params.as_str(),
        format!(
            "capi:authenc(hmac(sha256),xts(aes))-plain64 {hex} 0 254:1 0 2 \
             sector_size:4096 integrity:32:aead"
        )
    );
    assert!(t.secret);
    let dbg = format!("{t:?}");
    assert!(!dbg.contains("a500"), "{dbg}");
    assert!(dbg.contains("redacted"));
}

/// dm UUIDs and the keyring description follow cryptsetup 2.6.1.
#[test]
fn names_follow_cryptsetup() {
    let u = &Uuid::parse_str("0b3c5d1e-2f40-4a5b-8c6d-7e8f90a1b2c3").unwrap();
    assert_eq!(
        crypt_dm_uuid(u, "scratch"),
        "CRYPT-LUKS2-0b3c5d1e2f404a5b8c6d7e8f90a1b2c3-scratch"
    );
    assert_eq!(
        integrity_dm_uuid(u, "scratch_dif"),
        "CRYPT-INTEGRITY-0b3c5d1e2f404a5b8c6d7e8f90a1b2c3-scratch_dif"
    );
    assert_eq!(
        keyring_description(u),
        "cryptsetup:0b3c5d1e-2f40-4a5b-8c6d-7e8f90a1b2c3-d0"
    );
}

/// Mismatches between header and superblock, odd modes and bad device references are refused.
#[test]
fn inconsistent_inputs_are_refused() {
    let sb = parse_integrity_superblock(&superblock_bytes(8)).unwrap();
    let mut p = params();
    p.tag_size = 16;
    assert!(integrity_table("8:0", &p, &sb, None).is_err());
    let mut p = params();
    p.sector_size = 512;
    // The error names both sizes (the superblock's 8 sectors of 512 bytes per block).
    assert!(matches!(
        integrity_table("8:0", &p, &sb, None),
        Err(TableError::BlockSize {
            superblock: 4096,
            header: 512
        })
    ));
    assert!(integrity_table("/dev/a b", &params(), &sb, None).is_err());
    let mut p = params();
    p.cipher_mode = "xts".to_owned();
    assert!(capi_cipher_spec(&p).is_err());
    let mut p = params();
    p.integrity = "aead".to_owned();
    assert!(capi_cipher_spec(&p).is_err());
}

/// The journal size follows the kernel's layout: with 4 KiB blocks and 32-byte tags a section
/// is 264 sectors, so the 62 sections of a 1 GiB format give the `journal_sectors:16368` that
/// `dmsetup table` showed for it in the VM.
#[test]
fn journal_bytes_match_the_kernels_layout() {
    let sb = IntegritySuperblock {
        version: 5,
        log2_interleave_sectors: 15,
        tag_size: 32,
        journal_sections: 62,
        provided_data_sectors: 2_062_600,
        flags: 0,
        log2_sectors_per_block: 3,
    };
    assert_eq!(sb.journal_bytes(), 16_368 * 512);
    let none = IntegritySuperblock {
        journal_sections: 0,
        ..sb
    };
    assert_eq!(none.journal_bytes(), 0);
}
