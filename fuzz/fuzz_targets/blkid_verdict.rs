//! The data guard's verdict over any `NAME=value` list a probe of a hostile disk could yield
//! (NUL-separated pairs): no panic, and "ours" only for a LUKS2 header with our subsystem.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scratchcrypt::signature::{verdict, Verdict};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\0');
    let mut values = Vec::new();
    while let (Some(n), Some(v)) = (parts.next(), parts.next()) {
        values.push((n.to_owned(), v.to_owned()));
    }
    let v = verdict(&values);
    if v == Verdict::Ours {
        let get = |name: &str| values.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
        assert_eq!(get("TYPE"), Some("crypto_LUKS"));
        assert_eq!(get("SUBSYSTEM"), Some("scratchcrypt"));
    }
    if let Verdict::Foreign(found) = v {
        let _ = found.to_string();
    }
});
