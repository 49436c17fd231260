//! Unit tests of the image builder (unprivileged: they only build files in tmpfs or /tmp).
use super::*;

/// scratch
#[test]
fn scratch_build() {
    for (name, size) in [("s64M", 64u64 << 20), ("s1G", 1 << 30), ("s100G", 100 << 30), ("s1T", 1 << 40), ("s16T", 16 << 40)] {
        let p = std::path::PathBuf::from(format!("/dev/shm/fmtref/{name}"));
        let plan = build_image(&p, size, &FormatOptions::default()).unwrap();
        eprintln!("{name}: {}", serde_json::to_string(&FormatPlan { zero_ranges: vec![], ..plan.clone() }).unwrap());
    }
}
