//! The one rule for tests that cannot run on every machine (root, loop devices, FUSE, qemu,
//! e2fsprogs, the kernel keyring, a given temp file system).
//!
//! - `SCRATCHCRYPT_REQUIRE_PRIVILEGED=1` (set by `scripts/test-all.sh`, which CI runs): a test
//!   that cannot run **fails**, naming what is missing.
//! - Unset, empty or `0`: the test skips. The skip is written straight to the process's
//!   standard error (cargo's output capture only catches the `print!` macros, so the line
//!   shows even for a passing test) and appended to `target/scratchcrypt-skipped-tests.txt`,
//!   which `scripts/test-all.sh` counts at the end of the suite.
//! - Any other value is a mistake (`true`, `yes`): a test that would skip fails rather than
//!   guess what was meant.
//!
//! This file is shared verbatim: integration tests include it with `#[path]`, and so does
//! the library for its unit tests (`src/lib.rs`), so the rule is one and the same everywhere.
#![allow(dead_code)]

use std::io::Write;

/// The variable that turns every skip into a failure.
pub const REQUIRE_VAR: &str = "SCRATCHCRYPT_REQUIRE_PRIVILEGED";

/// Whether skipping is forbidden. Panics on a value other than unset, empty, `0` or `1`.
pub fn required() -> bool {
    match std::env::var(REQUIRE_VAR) {
        Err(std::env::VarError::NotPresent) => false,
        Ok(v) if v.is_empty() || v == "0" => false,
        Ok(v) if v == "1" => true,
        other => panic!("{REQUIRE_VAR} must be unset, 0 or 1, not {other:?}"),
    }
}

/// The file that collects the skips of a run (one line each).
pub fn log_path() -> std::path::PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("scratchcrypt-skipped-tests.txt")
}

/// `test` cannot run because of `why`: panic under [`REQUIRE_VAR`], else record the skip and
/// return, so that the caller returns early: `if skip::cannot_run(name, why) { return; }`.
/// Always returns true (the bool is there to make the early return read naturally).
pub fn cannot_run(test: &str, why: &str) -> bool {
    assert!(
        !required(),
        "{test}: cannot run: {why} ({REQUIRE_VAR}=1, so this is a failure, not a skip)"
    );
    let line = format!("SKIPPED {test}: {why}");
    // Straight to fd 2, past libtest's capture of eprintln!.
    let _ = writeln!(std::io::stderr(), "{line}");
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path())
    {
        let _ = writeln!(f, "{line}");
    }
    true
}
