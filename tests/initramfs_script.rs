//! The initramfs boot script (`packaging/initramfs-tools/scripts/init-bottom/scratchcrypt`)
//! on the host, with a stand-in `scratchcrypt` on PATH that records its arguments: how the
//! kernel command line and /etc/scratchcrypttab become `encrypt` calls, that a failure is
//! logged and the boot goes on, and that a `required` entry's failure panics. The real boots
//! are in tests/vm_initramfs.rs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

struct Run {
    out: Output,
    calls: Vec<String>,
    log: String,
}

/// Run the boot script with `cmdline` and `tab`; the stand-in fails for devices named in `fail`.
fn run_script(cmdline: &str, tab: &str, fail: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bin = d.join("bin");
    fs::create_dir(&bin).unwrap();
    let stub = bin.join("scratchcrypt");
    let fail_case: String = fail
        .iter()
        .map(|f| {
            format!("  {f}) echo 'scratchcrypt: {f} does not exist (waited 5 s)' >&2; exit 3 ;;\n")
        })
        .collect();
    fs::write(
        &stub,
        format!(
            "#!/bin/sh\necho \"$*\" >>'{calls}'\n\
             [ \"$1\" = --quiet ] || exit 99\n\
             dev=$3 name=dm-crypt-default\n\
             while [ $# -gt 0 ]; do [ \"$1\" = --name ] && name=$2; shift; done\n\
             case $dev in\n{fail_case}esac\n\
             echo /dev/mapper/$name\n",
            calls = d.join("calls").display()
        ),
    )
    .unwrap();
    fs::set_permissions(&stub, fs::Permissions::from_mode(0o755)).unwrap();
    let root = d.join("root");
    for mp in ["scratch", "scratch2", "var/cache/build"] {
        fs::create_dir_all(root.join(mp)).unwrap();
    }
    // An absolute link on the real root: in the initramfs it would resolve in the wrong tree.
    fs::create_dir_all(d.join("outside")).unwrap();
    std::os::unix::fs::symlink(d.join("outside"), root.join("linked")).unwrap();
    fs::write(d.join("cmdline"), cmdline).unwrap();
    fs::write(d.join("tab"), tab).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("packaging/initramfs-tools/scripts/init-bottom/scratchcrypt");
    let out = Command::new("sh")
        .arg(&script)
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env("rootmnt", &root)
        .env("SCRATCHCRYPT_CMDLINE", d.join("cmdline"))
        .env("SCRATCHCRYPT_TAB", d.join("tab"))
        .env("SCRATCHCRYPT_LOG", d.join("run/scratchcrypt.log"))
        .env("SCRATCHCRYPT_FUNCTIONS", d.join("no-functions"))
        .env("SCRATCHCRYPT_KMSG", "/dev/null")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let calls = fs::read_to_string(d.join("calls")).unwrap_or_default();
    let log = fs::read_to_string(d.join("run/scratchcrypt.log")).unwrap_or_default();
    Run {
        out,
        calls: calls
            .lines()
            .map(|l| l.replace(&root.display().to_string(), "$ROOT"))
            .collect(),
        log,
    }
}

#[test]
fn prereqs_put_it_after_udev() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("packaging/initramfs-tools/scripts/init-bottom/scratchcrypt");
    let out = Command::new("sh")
        .arg(script)
        .arg("prereqs")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "udev");
}

/// Command-line entries (a device with ':' in its name, options) and table entries (comments
/// and blank lines skipped) each become one `encrypt` under the real root's mount point.
#[test]
fn entries_become_encrypt_calls() {
    let r = run_script(
        "ro quiet scratchcrypt=/dev/disk/by-path/pci-0000:00:05.0:/scratch:name=a,fast-start,mount-options=noatime+nodev \
         root=/dev/vda scratchcrypt=/dev/vdc:/scratch2\n",
        "# comment\n\n/dev/vdd\t/var/cache/build   no-journal,force,wait=30,name=b\n",
        &[],
    );
    assert!(r.out.status.success(), "{:?}", r.out);
    // fast-start is refused from the initramfs (full format instead), with a warning.
    let stderr = String::from_utf8_lossy(&r.out.stderr);
    assert!(
        stderr.contains("fast-start is not supported from the initramfs"),
        "{stderr}"
    );
    assert_eq!(
        r.calls,
        vec![
            "--quiet encrypt /dev/disk/by-path/pci-0000:00:05.0 --name a --wait-timeout 5 \
             --mount $ROOT/scratch --mount-options noatime,nodev",
            "--quiet encrypt /dev/vdc --wait-timeout 5 --mount $ROOT/scratch2",
            "--quiet encrypt /dev/vdd --name b --wait-timeout 30 --mount $ROOT/var/cache/build --no-journal --force",
        ]
    );
    assert_eq!(
        r.log,
        "/dev/disk/by-path/pci-0000:00:05.0: fast-start is not supported from the initramfs yet; \
         formatting in full (use scratchcrypt@.service for a fast start)\n\
         ok /dev/disk/by-path/pci-0000:00:05.0 /scratch a\n\
         ok /dev/vdc /scratch2 dm-crypt-default\n\
         ok /dev/vdd /var/cache/build b\n"
    );
}

/// A disk that fails is logged with the tool's reason and the next entry still runs; the
/// script exits 0 so that the boot goes on. Malformed entries are skipped with a message.
#[test]
fn a_failure_is_logged_and_the_boot_goes_on() {
    let r = run_script(
        "scratchcrypt=/dev/vdb:/scratch scratchcrypt=nonsense scratchcrypt=/dev/vdc:relative \
         scratchcrypt=/dev/vdd:/scratch2:bogus",
        "",
        &["/dev/vdb"],
    );
    assert!(r.out.status.success(), "{:?}", r.out);
    let stderr = String::from_utf8_lossy(&r.out.stderr);
    assert!(stderr.contains("expected DEVICE:MOUNTPOINT"), "{stderr}");
    assert!(stderr.contains("unknown option 'bogus'"), "{stderr}");
    assert_eq!(r.calls.len(), 2, "{:?}", r.calls);
    assert!(
        r.log.starts_with(
            "failed /dev/vdb /scratch: scratchcrypt: /dev/vdb does not exist (waited 5 s)\n"
        ),
        "{}",
        r.log
    );
    assert!(
        r.log.ends_with("ok /dev/vdd /scratch2 dm-crypt-default\n"),
        "{}",
        r.log
    );
}

/// Issue 26 item 12: a mount point with a symbolic link on the real root (resolved in the
/// initramfs, it would land in the discarded tree) or a `..` component is refused, logged, and
/// not passed to `encrypt`; a plain one next to them still is.
#[test]
fn mount_points_through_links_or_dotdot_are_refused() {
    let r = run_script(
        "scratchcrypt=/dev/vdb:/linked scratchcrypt=/dev/vdc:/linked/sub \
         scratchcrypt=/dev/vdd:/scratch/../scratch2 scratchcrypt=/dev/vde:/scratch",
        "",
        &[],
    );
    assert!(r.out.status.success(), "{:?}", r.out);
    assert_eq!(r.calls.len(), 1, "{:?}", r.calls);
    assert!(r.calls[0].contains("/dev/vde"), "{:?}", r.calls);
    for dev in [
        "/dev/vdb /linked",
        "/dev/vdc /linked/sub",
        "/dev/vdd /scratch/../scratch2",
    ] {
        assert!(
            r.log.contains(&format!("failed {dev}: mount point")),
            "{dev}: {}",
            r.log
        );
    }
}

/// `required`: the failure stops the boot through initramfs' panic.
#[test]
fn a_required_failure_panics() {
    let r = run_script(
        "",
        "/dev/vdb /scratch required\n/dev/vdc /scratch2\n",
        &["/dev/vdb"],
    );
    assert!(!r.out.status.success(), "{:?}", r.out);
    let stdout = String::from_utf8_lossy(&r.out.stdout);
    assert!(
        stdout.contains(
            "PANIC: scratchcrypt: the required scratch disk /dev/vdb for /scratch failed"
        ),
        "{stdout}"
    );
    assert_eq!(r.calls.len(), 1, "nothing after the panic: {:?}", r.calls);
}
