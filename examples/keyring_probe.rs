//! Positive control of the VM's `/proc/keys` check (`tests/vm/guest/rel_concurrency.sh`): adds a
//! `logon` key called DESCRIPTION to this thread's keyring, as libcryptsetup and scratchcrypt do
//! for a table load, prints `ADDED <serial>`, and keeps it there until killed (at most 60 s).
//! If `/proc/keys`, read by another process, does not list it, the check that no volume key is
//! left while `encrypt` lives would prove nothing.
//!
//! Uses only libc (no libcryptsetup), so the guest needs no more libraries than glibc.

use std::ffi::CString;
use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(description) = std::env::args().nth(1) else {
        eprintln!("usage: keyring_probe DESCRIPTION");
        return ExitCode::from(2);
    };
    let (Ok(ty), Ok(desc)) = (CString::new("logon"), CString::new(description)) else {
        eprintln!("keyring_probe: a NUL in the description");
        return ExitCode::from(2);
    };
    let payload = [0u8; 96];
    // SAFETY: add_key(2) reads two NUL-terminated strings and `payload.len()` bytes of
    // `payload`, all alive across the call; -1 is KEY_SPEC_THREAD_KEYRING.
    let serial = unsafe {
        libc::syscall(
            libc::SYS_add_key,
            ty.as_ptr(),
            desc.as_ptr(),
            payload.as_ptr(),
            payload.len(),
            -1 as libc::c_long,
        )
    };
    if serial < 0 {
        eprintln!(
            "keyring_probe: add_key: {}",
            std::io::Error::last_os_error()
        );
        return ExitCode::from(1);
    }
    println!("ADDED {serial}");
    std::thread::sleep(std::time::Duration::from_secs(60));
    ExitCode::SUCCESS
}
