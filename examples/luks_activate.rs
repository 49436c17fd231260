//! Drive the LUKS2 format and the device-mapper activation from the command line, for the VM
//! tests (tests/vm/guest/luks_*.sh) and for measurements. Not part of the product.
//!
//! ```text
//! luks_activate open <device> <name> [<key-export-file>]   format + activate, print params
//! luks_activate open-hex <device> <name> [<key-export-file>]  the same, key as hex in the table
//! luks_activate remove <name>                              remove <name> and <name>_dif
//! luks_activate time-format <device> <layout> [n]        time n formats (median, ms)
//!     layout: ours (the product), or <meta>-<bench> with meta = small|default (metadata area)
//!     and bench = nobench|bench (PBKDF2 digest benchmark), via libcryptsetup directly
//! ```
//!
//! The key export exists only so a VM test can reopen the volume with cryptsetup; the product
//! never writes the key anywhere.
#![allow(clippy::print_stdout)]

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use libcryptsetup_rs::consts::flags::{CryptActivate, CryptPbkdf};
use libcryptsetup_rs::consts::vals::{CryptKdf, EncryptionFormat};
use libcryptsetup_rs::{CryptInit, CryptParamsLuks2, CryptParamsLuks2Ref, CryptPbkdfType, Either};
use scratchcrypt::dm::{activate_with, ensure_names_free, remove, KeyPlacement, RealDm};
use scratchcrypt::luks::{Libcryptsetup, LuksFormatter};
use scratchcrypt::MappingName;
use scratchcrypt::VolumeKey;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let r = match args.get(1).map(String::as_str) {
        Some("open") if args.len() >= 4 => {
            open(&args[2], &args[3], args.get(4), KeyPlacement::Keyring)
        }
        Some("open-hex") if args.len() >= 4 => {
            open(&args[2], &args[3], args.get(4), KeyPlacement::Hex)
        }
        Some("remove") if args.len() == 3 => rm(&args[2]),
        Some("time-format") if args.len() >= 4 => time_format(
            &args[2],
            &args[3],
            args.get(4).and_then(|n| n.parse().ok()).unwrap_or(5),
        ),
        _ => Err(
            "usage: luks_activate open <dev> <name> [keyfile] | remove <name> | \
                  time-format <dev> minimal|default [n]"
                .into(),
        ),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let mut msg = e.to_string();
            let mut src = e.source();
            while let Some(s) = src {
                msg.push_str(&format!(": {s}"));
                src = s.source();
            }
            eprintln!("luks_activate: {msg}");
            let code = e
                .downcast_ref::<scratchcrypt::dm::DmError>()
                .map(|d| d.class().exit_code())
                .or_else(|| {
                    e.downcast_ref::<scratchcrypt::luks::LuksError>()
                        .map(|l| l.class().exit_code())
                })
                .unwrap_or(1);
            ExitCode::from(u8::try_from(code).unwrap_or(1))
        }
    }
}

type Res = Result<(), Box<dyn std::error::Error>>;

fn open(device: &str, name: &str, export: Option<&String>, placement: KeyPlacement) -> Res {
    let name = MappingName::new(name)?;
    let dm = RealDm::new()?;
    ensure_names_free(&dm, &name)?;
    let key = VolumeKey::generate()?;
    let t = Instant::now();
    let params = Libcryptsetup.format(Path::new(device), &key)?;
    let t_format = t.elapsed();
    if let Some(path) = export {
        std::fs::write(path, key.expose())?;
    }
    let t = Instant::now();
    let a = activate_with(&dm, Path::new(device), &params, &key, &name, placement)?;
    println!("params: {params:?}");
    println!("activation: {a:?}");
    println!(
        "timing: format {} ms, activate {} ms",
        t_format.as_millis(),
        t.elapsed().as_millis()
    );
    Ok(())
}

fn rm(name: &str) -> Res {
    let name = MappingName::new(name)?;
    let dm = RealDm::new()?;
    let out = remove(&dm, &name)?;
    if out.existed() {
        println!("removed: {out:?}");
    } else {
        println!("note: no mapping {name} existed");
    }
    Ok(())
}

/// Format `n` times with our settings or with libcryptsetup's default metadata size and
/// benchmark, and print the median.
fn time_format(device: &str, layout: &str, n: usize) -> Res {
    let mut ms = Vec::new();
    for _ in 0..n {
        let key = VolumeKey::generate()?;
        let t = Instant::now();
        let r = match layout {
            "ours" => Libcryptsetup
                .format(Path::new(device), &key)
                .map(|_| ())
                .map_err(|e| e.to_string()),
            l => {
                let small = l.starts_with("small");
                let bench = l.ends_with("-bench");
                variant_format(device, &key, small, bench).map_err(|e| e.to_string())
            }
        };
        let el = t.elapsed().as_secs_f64() * 1000.0;
        let outcome = r.err().unwrap_or_else(|| "ok".into());
        println!("{layout}: {el:.1} ms ({outcome})");
        ms.push(el);
    }
    ms.sort_by(f64::total_cmp);
    println!("{layout}: median {:.1} ms over {n}", ms[ms.len() / 2]);
    Ok(())
}

/// A format with the metadata area small or default, and the digest benchmark on or off.
fn variant_format(
    device: &str,
    key: &VolumeKey,
    small: bool,
    bench: bool,
) -> Result<(), libcryptsetup_rs::LibcryptErr> {
    let mut cd = CryptInit::init(Path::new(device))?;
    cd.settings_handle().set_pbkdf_type(&CryptPbkdfType {
        type_: CryptKdf::Pbkdf2,
        hash: Some("sha256".to_owned()),
        time_ms: if bench { 2000 } else { 0 },
        iterations: if bench { 0 } else { 1000 },
        max_memory_kb: 0,
        parallel_threads: 0,
        flags: if bench {
            CryptPbkdf::empty()
        } else {
            CryptPbkdf::NO_BENCHMARK
        },
    })?;
    if small {
        cd.settings_handle().set_metadata_size(
            libcryptsetup_rs::consts::vals::MetadataSize::Kb16,
            libcryptsetup_rs::consts::vals::KeyslotsSize::try_from(4096)?,
        )?;
    }
    let params = CryptParamsLuks2 {
        pbkdf: None,
        integrity: Some("hmac(sha256)".to_owned()),
        integrity_params: None,
        data_alignment: 0,
        data_device: None,
        sector_size: 4096,
        label: None,
        subsystem: None,
    };
    let mut r: CryptParamsLuks2Ref<'_> = (&params).try_into()?;
    cd.context_handle().format(
        EncryptionFormat::Luks2,
        ("aes", "xts-plain64"),
        None,
        Either::Left(key.expose()),
        Some(&mut r),
    )?;
    cd.luks2_flag_handle::<CryptActivate>()
        .persistent_flags_set(CryptActivate::NO_JOURNAL)
}
