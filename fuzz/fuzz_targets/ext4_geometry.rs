//! The ext4 superblock parser of the online growth, and the step planner over what it accepts:
//! no panic, no overflow, and every planned step grows the file system without passing the
//! target.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use scratchcrypt::resize::{next_step, Ext4Geometry, SUPERBLOCK_BYTES};

fuzz_target!(|data: &[u8]| {
    if data.len() < SUPERBLOCK_BYTES + 8 {
        return;
    }
    let mut sb = [0u8; SUPERBLOCK_BYTES];
    sb.copy_from_slice(&data[..SUPERBLOCK_BYTES]);
    let mut target = [0u8; 8];
    target.copy_from_slice(&data[SUPERBLOCK_BYTES..SUPERBLOCK_BYTES + 8]);
    let target = u64::from_le_bytes(target);
    if let Ok(geom) = Ext4Geometry::parse(&sb, Path::new("/fuzz")) {
        if let Some(step) = next_step(&geom, target, 128 << 10) {
            assert!(step.blocks > geom.blocks && step.blocks <= target);
        }
    }
});
