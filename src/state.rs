//! The run-state directory: where every lock and record of this tool lives.
//!
//! # Invariants
//! - One directory, [`STATE_DIR`] (`/run/scratchcrypt`, a tmpfs gone at reboot with the keys),
//!   for the growth records, the growers' locks and the dm-integrity lock. Never `/run/lock`
//!   or `/tmp`: those are world-writable, so another user could hold our lock, plant a link
//!   that makes root create a file anywhere, or (`protected_regular=2`) make root's open fail.
//! - Before any file in it is used, the directory is checked through a descriptor opened with
//!   `O_NOFOLLOW | O_DIRECTORY`: a real directory, owned by this process's effective uid,
//!   mode 0700 (no group or other bits). Anything else is refused, never repaired: a directory
//!   this tool did not make is not its to chmod.
//! - Every file in it is opened with `O_NOFOLLOW` (a link is refused, not followed) and checked
//!   after opening: a regular file owned by this process's effective uid.
//! - Nothing here is secret (no key byte is ever written to it); the checks are about who may
//!   act on our behalf, not about confidentiality.
//!
//! Base module: imports nothing from the crate, so `kernel` (the dm-integrity lock) and
//! `pipeline` (the growth state) can both use it.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

/// Where run state lives.
pub const STATE_DIR: &str = "/run/scratchcrypt";

fn refuse(path: &Path, reason: String) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!(
            "{} is not this tool's own state (it {reason}); refusing to use it",
            path.display()
        ),
    )
}

/// Make `dir` (mode 0700) if missing, then check it is ours: not a link, a directory, owned
/// by this process's effective uid, no group or other permission bits.
pub fn ensure_dir(dir: &Path) -> io::Result<()> {
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let handle = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(dir)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) | Some(libc::ENOTDIR) => {
                refuse(dir, "is a symbolic link or not a directory".to_owned())
            }
            _ => e,
        })?;
    let meta = handle.metadata()?;
    let euid = nix::unistd::geteuid().as_raw();
    if meta.uid() != euid {
        return Err(refuse(
            dir,
            format!("is owned by uid {}, not {euid}", meta.uid()),
        ));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(refuse(
            dir,
            format!("has mode {:o}, not 0700", meta.mode() & 0o7777),
        ));
    }
    Ok(())
}

/// Open (and with `create`, create with mode 0600) the file `path` inside a directory that
/// [`ensure_dir`] accepted, for reading and writing: never through a link, and only a regular
/// file owned by this process's effective uid.
pub fn open_file(path: &Path, create: bool) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => refuse(path, "is a symbolic link".to_owned()),
            _ => e,
        })?;
    let meta = file.metadata()?;
    let euid = nix::unistd::geteuid().as_raw();
    if !meta.is_file() {
        return Err(refuse(path, "is not a regular file".to_owned()));
    }
    if meta.uid() != euid {
        return Err(refuse(
            path,
            format!("is owned by uid {}, not {euid}", meta.uid()),
        ));
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A fresh directory is made 0700 and accepted, again and again.
    #[test]
    fn a_fresh_dir_is_made_private() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("state");
        ensure_dir(&dir).unwrap();
        ensure_dir(&dir).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, 0o700);
    }

    /// A directory with group or other bits, a link to a directory, or one owned by someone
    /// else is refused and left as it was.
    #[test]
    fn a_dir_that_is_not_ours_is_refused() {
        let base = tempfile::tempdir().unwrap();
        let open = base.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let e = ensure_dir(&open).unwrap_err();
        assert!(e.to_string().contains("mode 1777"), "{e}");
        let mode = std::fs::metadata(&open).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, 0o1777, "the mode was changed");
        let real = base.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o700)).unwrap();
        let link = base.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let e = ensure_dir(&link).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        if !nix::unistd::geteuid().is_root() {
            crate::test_skip::cannot_run(
                "state::tests::a_dir_that_is_not_ours_is_refused",
                "needs root to give a directory to uid 65534",
            );
        } else {
            let theirs = base.path().join("theirs");
            std::fs::create_dir(&theirs).unwrap();
            std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o700)).unwrap();
            std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
            let e = ensure_dir(&theirs).unwrap_err();
            assert!(e.to_string().contains("owned by uid 65534"), "{e}");
        }
    }

    /// A link planted in place of a file is refused and its target not created; a file of
    /// another owner is refused.
    #[test]
    fn files_are_never_opened_through_links_or_of_other_owners() {
        let base = tempfile::tempdir().unwrap();
        let target = base.path().join("created-through-link");
        let link = base.path().join("x.lock");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = open_file(&link, true).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert!(!target.exists());
        let mine = base.path().join("mine.lock");
        open_file(&mine, true).unwrap();
        if !nix::unistd::geteuid().is_root() {
            crate::test_skip::cannot_run(
                "state::tests::files_are_never_opened_through_links_or_of_other_owners",
                "needs root to give a file to uid 65534",
            );
        } else {
            std::os::unix::fs::chown(&mine, Some(65534), Some(65534)).unwrap();
            let e = open_file(&mine, false).unwrap_err();
            assert!(e.to_string().contains("owned by uid 65534"), "{e}");
        }
    }
}
