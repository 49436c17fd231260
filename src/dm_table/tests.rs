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

/// The integrity table is libcryptsetup 2.6.1's, sized from the superblock.
#[test]
fn integrity_table_matches_libcryptsetup() {
    let sb = parse_integrity_superblock(&superblock_bytes(2_031_880)).unwrap();
    let t = integrity_table("253:0", &params(), &sb).unwrap();
    assert_eq!(t.length, 2_031_880);
    assert_eq!(t.target, "integrity");
    assert_eq!(
        t.params.as_str(),
        "253:0 32768 32 D 3 block_size:4096 fix_padding fix_hmac"
    );
    assert!(!t.secret);
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
    let t = crypt_table("254:0", &p, &sb, &key).unwrap();
    assert_eq!(t.length, 2_031_880);
    assert_eq!(
        t.params.as_str(),
        "capi:authenc(hmac(sha256),xts(aes))-plain64 \
         :96:logon:cryptsetup:0b3c5d1e-2f40-4a5b-8c6d-7e8f90a1b2c3-d0 \
         0 254:0 0 2 sector_size:4096 integrity:32:aead"
    );
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
    let t = crypt_table("254:1", &p, &sb, &KeyRef::Hex(&k)).unwrap();
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
    assert!(integrity_table("8:0", &p, &sb).is_err());
    let mut p = params();
    p.sector_size = 512;
    // The error names both sizes (the superblock's 8 sectors of 512 bytes per block).
    assert!(matches!(
        integrity_table("8:0", &p, &sb),
        Err(TableError::BlockSize {
            superblock: 4096,
            header: 512
        })
    ));
    assert!(integrity_table("/dev/a b", &params(), &sb).is_err());
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
