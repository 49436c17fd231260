//! The command-line tool's contract, natively: exit statuses, one-line errors on stderr, and
//! the `format-image` / `copy-extents` commands. Needs no device-mapper (the refusals here
//! happen before it is touched); the end-to-end `encrypt` runs are in the VM tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::process::{Command, Output};

fn scratchcrypt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_scratchcrypt"))
        .args(args)
        .output()
        .unwrap()
}

/// The one line on stderr, checked to be a single `scratchcrypt: ...` line.
fn one_line_error(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(err.lines().count(), 1, "not one line: {err:?}");
    assert!(err.starts_with("scratchcrypt: "), "{err:?}");
    err
}

/// Bad sources are refused before anything is written, each with its reason and exit 3.
#[test]
fn bad_sources_get_one_line_and_exit_3() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("disk.img");
    File::create(&file).unwrap().set_len(64 << 20).unwrap();
    File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .write_all_at(b"marker", 0)
        .unwrap();
    let missing = dir.path().join("missing");
    let cases = [
        (
            file.to_str().unwrap(),
            "is a regular file, not a block device",
        ),
        ("/dev/null", "is a character device"),
        (missing.to_str().unwrap(), "does not exist (waited 0.1 s)"),
        ("/proc", "is not a block device"),
    ];
    for (source, why) in cases {
        let out = scratchcrypt(&["encrypt", source, "--wait-timeout", "0.1"]);
        assert_eq!(out.status.code(), Some(3), "{source}: {out:?}");
        let err = one_line_error(&out);
        assert!(err.contains("check the source device"), "{err}");
        assert!(err.contains(why), "{source}: {err}");
        assert!(out.stdout.is_empty());
    }
    let mut head = [0u8; 6];
    File::open(&file)
        .unwrap()
        .read_exact_at(&mut head, 0)
        .unwrap();
    assert_eq!(&head, b"marker", "the refused file was written to");
}

/// Invalid names and options are usage errors: exit 2 and one line, like every other error.
#[test]
fn invalid_names_and_options_exit_2() {
    for args in [
        &["encrypt", "/dev/null", "--name", "a/b"][..],
        &["encrypt", "/dev/null", "--name", ""],
        &["encrypt", "/dev/null", "--wait-timeout", "inf"],
        &["cleanup", "has space"],
        &["format-image", "/tmp/x", "--size", "4X"],
    ] {
        let out = scratchcrypt(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        one_line_error(&out);
    }
    let long = "n".repeat(124);
    let out = scratchcrypt(&["cleanup", &long]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("longer than 123 bytes"));
}

/// `format-image --json` prints a plan whose numbers are consistent with the image written.
#[test]
fn format_image_prints_a_consistent_plan() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("fs.img");
    let out = scratchcrypt(&[
        "format-image",
        img.to_str().unwrap(),
        "--size",
        "256M",
        "--json",
    ]);
    assert!(out.status.success(), "{out:?}");
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["block_size"], 4096);
    assert_eq!(plan["size_bytes"], 256u64 << 20);
    let zero: u64 = plan["zero_ranges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["len"].as_u64().unwrap())
        .sum();
    assert_eq!(zero, plan["zero_bytes"].as_u64().unwrap());
    assert_eq!(std::fs::metadata(&img).unwrap().len(), 256 << 20);
    let too_small = scratchcrypt(&["format-image", img.to_str().unwrap(), "--size", "1M"]);
    assert_eq!(too_small.status.code(), Some(3));
    one_line_error(&too_small);
}

/// `copy-extents` copies data at the same offsets and leaves holes unwritten.
#[test]
fn copy_extents_copies_data_at_its_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let dst = dir.path().join("dst");
    let s = File::create(&src).unwrap();
    s.set_len(16 << 20).unwrap();
    s.write_all_at(&[7u8; 4096], 8 << 20).unwrap();
    let d = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&dst)
        .unwrap();
    d.set_len(16 << 20).unwrap();
    d.write_all_at(&[9u8; 4096], 0).unwrap();
    let out = scratchcrypt(&[
        "copy-extents",
        src.to_str().unwrap(),
        dst.to_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success(), "{out:?}");
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stats["bytes_copied"], 4096);
    let mut buf = [0u8; 4096];
    d.read_exact_at(&mut buf, 8 << 20).unwrap();
    assert_eq!(buf, [7u8; 4096]);
    d.read_exact_at(&mut buf, 0).unwrap();
    assert_eq!(
        buf, [9u8; 4096],
        "a hole of the source overwrote the destination"
    );
}

#[path = "support/skip.rs"]
mod skip;

/// A device the user may not open is a permission error (exit 8) that keeps the OS error, not
/// an I/O failure.
#[test]
fn a_device_that_may_not_be_opened_exits_8() {
    use std::os::unix::fs::PermissionsExt;
    let test = "cli::a_device_that_may_not_be_opened_exits_8";
    if !nix::unistd::geteuid().is_root()
        || Command::new("setpriv").arg("--version").output().is_err()
    {
        skip::cannot_run(
            test,
            "needs root (to make a device node) and setpriv (util-linux)",
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let node = dir.path().join("disk");
    nix::sys::stat::mknod(
        &node,
        nix::sys::stat::SFlag::S_IFBLK,
        nix::sys::stat::Mode::from_bits_truncate(0o600),
        nix::sys::stat::makedev(7, 250),
    )
    .unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_scratchcrypt"))
        .args(["encrypt", node.to_str().unwrap(), "--wait-timeout", "0"])
        .output()
        .unwrap();
    let err = one_line_error(&out);
    assert_eq!(out.status.code(), Some(8), "{err}");
    assert!(err.contains("Permission denied"), "{err}");
    assert!(err.contains(node.to_str().unwrap()), "{err}");
}

/// `status` without NAME lists the scratchcrypt mappings; this host has no device-mapper, so
/// the list is empty: no line at all as text, an empty array as JSON, exit 0. (The list of
/// real mappings is checked in the initramfs boot, tests/vm_initramfs.rs.)
#[test]
fn status_without_name_lists_no_mapping_here() {
    let out = scratchcrypt(&["status"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(out.stdout.is_empty() && out.stderr.is_empty(), "{out:?}");
    let out = scratchcrypt(&["status", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v, serde_json::json!([]));
    // With a name it still reads that mapping (missing here: an error, not an empty list).
    let out = scratchcrypt(&["status", "no-such-mapping", "--json"]);
    assert_ne!(out.status.code(), Some(0), "{out:?}");
    one_line_error(&out);
}

/// `--quiet` is global (before or after the command) and silences notes, not errors.
#[test]
fn quiet_is_global_and_keeps_errors() {
    for args in [
        &[
            "--quiet",
            "encrypt",
            "/nonexistent-disk",
            "--wait-timeout",
            "0.1",
        ][..],
        &[
            "encrypt",
            "/nonexistent-disk",
            "-q",
            "--wait-timeout",
            "0.1",
        ][..],
    ] {
        let out = scratchcrypt(args);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {out:?}");
        assert!(one_line_error(&out).contains("does not exist"));
    }
    let help = scratchcrypt(&["--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("-q, --quiet"), "{help}");
    // The packaging command stays out of the help.
    assert!(!help.contains("generate"), "{help}");
}

/// Completions for bash, zsh and fish come from the clap definitions: each names every
/// command and an option of `encrypt`, and not the hidden `generate`; the bash one is valid
/// shell.
#[test]
fn completions_cover_every_command() {
    let commands = [
        "encrypt",
        "cleanup",
        "format-image",
        "copy-extents",
        "status",
        "grow",
    ];
    for (shell, marker) in [
        ("bash", "complete -F _scratchcrypt"),
        ("zsh", "#compdef scratchcrypt"),
        ("fish", "complete -c scratchcrypt"),
    ] {
        let out = scratchcrypt(&["generate", "completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}: {out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(marker), "{shell}: no {marker:?}");
        for c in commands {
            assert!(text.contains(c), "{shell} completion lacks {c}");
        }
        assert!(
            text.contains("fast-start"),
            "{shell} completion lacks --fast-start"
        );
        // The hidden packaging command is not offered.
        assert!(
            !text.contains("generate"),
            "{shell} completion offers the hidden generate command"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("scratchcrypt.bash");
    std::fs::write(
        &file,
        scratchcrypt(&["generate", "completions", "bash"]).stdout,
    )
    .unwrap();
    let st = Command::new("bash").arg("-n").arg(&file).status().unwrap();
    assert!(st.success(), "bash -n rejects the completion script");
    let out = scratchcrypt(&["generate", "completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

/// The man pages: one for the tool and one per command, in roff, with the options of each.
#[test]
fn man_pages_have_every_command_and_option() {
    let dir = tempfile::tempdir().unwrap();
    let out = scratchcrypt(&["generate", "man", dir.path().join("man").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let mut pages: Vec<String> = std::fs::read_dir(dir.path().join("man"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    pages.sort();
    assert_eq!(
        pages,
        [
            "scratchcrypt-cleanup.1",
            "scratchcrypt-copy-extents.1",
            "scratchcrypt-encrypt.1",
            "scratchcrypt-format-image.1",
            "scratchcrypt-grow.1",
            "scratchcrypt-status.1",
            "scratchcrypt.1"
        ]
    );
    let main = std::fs::read_to_string(dir.path().join("man/scratchcrypt.1")).unwrap();
    assert!(main.contains(".TH scratchcrypt 1"), "{main}");
    assert!(main.contains("quiet"));
    let encrypt = std::fs::read_to_string(dir.path().join("man/scratchcrypt-encrypt.1")).unwrap();
    for opt in [
        "fast\\-start",
        "mount\\-options",
        "wait\\-timeout",
        "no\\-journal",
    ] {
        assert!(encrypt.contains(opt), "scratchcrypt-encrypt.1 lacks {opt}");
    }
}
