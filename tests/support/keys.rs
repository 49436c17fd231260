//! Looking a key up in the calling thread's keyrings, as the kernel does when dm-crypt loads a
//! table that names `:96:logon:<description>`.
//!
//! Why in the process: after the process exits its thread and process keyrings are gone
//! anyway, so a `/proc/keys` check afterwards proves nothing. `KEYCTL_SEARCH` from the thread
//! that activated the mapping, right after activation, sees exactly what a later table load on
//! that thread could still use.

/// `KEYCTL_SEARCH` (`include/uapi/linux/keyctl.h`).
const KEYCTL_SEARCH: libc::c_long = 10;

/// The special keyrings searched: thread, process, session, user, user-session.
pub const KEYRINGS: [(libc::c_long, &str); 5] = [
    (-1, "thread"),
    (-2, "process"),
    (-3, "session"),
    (-4, "user"),
    (-5, "user-session"),
];

/// Search `keyring` (a `KEY_SPEC_*` id) and everything linked from it for a `logon` key called
/// `description`: its serial, or the errno (`ENOKEY` when there is none).
pub fn search(keyring: libc::c_long, description: &str) -> Result<libc::c_long, i32> {
    let ty = std::ffi::CString::new("logon").map_err(|_| libc::EINVAL)?;
    let desc = std::ffi::CString::new(description).map_err(|_| libc::EINVAL)?;
    // SAFETY: KEYCTL_SEARCH reads two NUL-terminated strings that live across the call; the
    // destination keyring is 0 (do not link the result anywhere).
    let r = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_SEARCH,
            keyring,
            ty.as_ptr(),
            desc.as_ptr(),
            0 as libc::c_long,
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(r)
    }
}

/// Where a `logon` key called `description` is still found from this thread, as
/// `(keyring name, result)` for every keyring whose search does not say `ENOKEY`. Empty when
/// the key is nowhere.
pub fn still_findable(description: &str) -> Vec<(&'static str, Result<libc::c_long, i32>)> {
    KEYRINGS
        .iter()
        .map(|&(id, name)| (name, search(id, description)))
        .filter(|(_, r)| *r != Err(libc::ENOKEY))
        .collect()
}
