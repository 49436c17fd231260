//! The dm-integrity superblock parser over any bytes the host could put at the data offset:
//! it must return an error or a superblock, never panic, and what it accepts must re-encode to
//! a superblock that parses to the same values.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scratchcrypt::superblock::parse_integrity_superblock;

fuzz_target!(|data: &[u8]| {
    if let Ok(sb) = parse_integrity_superblock(data) {
        let again = parse_integrity_superblock(&sb.encode()).expect("re-encoded superblock parses");
        assert_eq!(again, sb);
        let _ = sb.journal_bytes();
    }
});
