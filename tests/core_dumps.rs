//! Issue 26 item 11: the command-line tool is non-dumpable with a core size limit of 0 from
//! its first line, so a crash or SIGQUIT cannot write key material to a core file.
//!
//! Observed from outside while the process lives: it runs as an unprivileged user (uid 65534)
//! waiting for a device that does not exist; a dumpable process owns its `/proc/PID` files, a
//! non-dumpable one's belong to root; `/proc/PID/limits` shows its core limit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/skip.rs"]
mod skip;

use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const NOBODY: u32 = 65534;

#[test]
fn the_tool_is_non_dumpable_with_no_core_limit_while_it_runs() {
    if !nix::unistd::geteuid().is_root() {
        skip::cannot_run(
            "the_tool_is_non_dumpable_with_no_core_limit_while_it_runs",
            "needs root to start the tool as uid 65534",
        );
        return;
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_scratchcrypt"))
        .args([
            "encrypt",
            "/nonexistent-scratchcrypt-core-test/disk",
            "--wait-timeout",
            "5",
        ])
        .uid(NOBODY)
        .gid(NOBODY)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let proc_dir = std::path::PathBuf::from(format!("/proc/{}", child.id()));
    // Give it time to reach its wait (it runs as uid 65534 once exec has happened).
    let started = Instant::now();
    let mut seen = None;
    while started.elapsed() < Duration::from_secs(3) {
        let status = std::fs::read_to_string(proc_dir.join("status")).unwrap();
        let exe_uid = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|u| u.split_whitespace().next().map(str::to_owned));
        if exe_uid.as_deref() == Some("65534") && started.elapsed() > Duration::from_millis(500) {
            let owner = std::fs::metadata(proc_dir.join("environ")).unwrap().uid();
            let limits = std::fs::read_to_string(proc_dir.join("limits")).unwrap();
            seen = Some((owner, limits));
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let still_running = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    assert!(
        still_running,
        "the tool exited early: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (owner, limits) = seen.expect("the tool never ran as uid 65534");
    assert_eq!(
        owner, 0,
        "/proc/PID/environ of a uid-65534 process owned by {owner}: it is dumpable"
    );
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    let fields: Vec<&str> = core.split_whitespace().collect();
    assert_eq!(&fields[4..6], &["0", "0"], "{core}");
}
