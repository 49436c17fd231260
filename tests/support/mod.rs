//! Test support shared by the privileged test binaries. See `README.md` beside this file.
// Each test binary compiles this module on its own and uses only part of it.
#![allow(dead_code)]

pub mod privileged;
pub mod strict_device;
