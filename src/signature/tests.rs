//! The verdict over value lists, and the real probe over files made by the stock tools.

use std::process::Command;

use super::*;

fn values(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

#[test]
fn no_values_is_empty() {
    assert_eq!(verdict(&[]), Verdict::Empty);
}

#[test]
fn our_luks2_subsystem_is_ours() {
    let v = values(&[
        ("VERSION", "2"),
        ("SUBSYSTEM", "scratchcrypt"),
        ("TYPE", "crypto_LUKS"),
        ("USAGE", "crypto"),
    ]);
    assert_eq!(verdict(&v), Verdict::Ours);
}

#[test]
fn someone_elses_luks_is_foreign() {
    for v in [
        values(&[
            ("VERSION", "2"),
            ("TYPE", "crypto_LUKS"),
            ("USAGE", "crypto"),
        ]),
        values(&[
            ("VERSION", "2"),
            ("SUBSYSTEM", "scratchcrypt-not"),
            ("TYPE", "crypto_LUKS"),
        ]),
        values(&[
            ("VERSION", "1"),
            ("SUBSYSTEM", "scratchcrypt"),
            ("TYPE", "crypto_LUKS"),
        ]),
        values(&[("SUBSYSTEM", "scratchcrypt"), ("TYPE", "ext4")]),
    ] {
        assert!(matches!(verdict(&v), Verdict::Foreign(_)), "{v:?}");
    }
}

#[test]
fn findings_read_well() {
    let ext4 = verdict(&values(&[
        ("LABEL", "home"),
        ("TYPE", "ext4"),
        ("USAGE", "filesystem"),
    ]));
    let Verdict::Foreign(found) = ext4 else {
        panic!("{ext4:?}")
    };
    assert_eq!(found.to_string(), "ext4 (filesystem) labelled \"home\"");
    let gpt = verdict(&values(&[("PTTYPE", "gpt"), ("PTUUID", "x")]));
    let Verdict::Foreign(found) = gpt else {
        panic!("{gpt:?}")
    };
    assert_eq!(found.to_string(), "a gpt partition table");
    let odd = verdict(&values(&[("PTUUID", "x")]));
    assert!(
        matches!(odd, Verdict::Foreign(ref f) if f.kind == "an unnamed signature"),
        "{odd:?}"
    );
}

/// A file made by a stock tool (an oracle installed by scripts/deps.sh), or `None` with a
/// skip note when the tool is missing.
fn made_by(tool: &str, args: &[&str], size: u64) -> Option<tempfile::NamedTempFile> {
    let file = tempfile::NamedTempFile::new().unwrap();
    file.as_file().set_len(size).unwrap();
    let status = Command::new(tool).args(args).arg(file.path()).output();
    match status {
        Ok(out) if out.status.success() => Some(file),
        Ok(out) => panic!(
            "{tool} {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(_) => {
            crate::test_skip::cannot_run(
                "signature::tests",
                &format!("needs {tool} to make a sample (scripts/deps.sh installs it)"),
            );
            None
        }
    }
}

#[test]
fn a_zeroed_file_is_empty() {
    let file = tempfile::NamedTempFile::new().unwrap();
    file.as_file().set_len(64 << 20).unwrap();
    assert_eq!(probe(file.path()).unwrap(), Verdict::Empty);
}

#[test]
fn an_ext4_file_system_is_found() {
    let Some(file) = made_by(
        "mke2fs",
        &["-q", "-F", "-t", "ext4", "-L", "precious"],
        64 << 20,
    ) else {
        return;
    };
    match probe(file.path()).unwrap() {
        Verdict::Foreign(found) => {
            assert_eq!(found.kind, "ext4");
            assert_eq!(found.label.as_deref(), Some("precious"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn swap_is_found() {
    let Some(file) = made_by("mkswap", &["-q"], 64 << 20) else {
        return;
    };
    assert!(matches!(probe(file.path()).unwrap(), Verdict::Foreign(f) if f.kind == "swap"));
}

#[test]
fn luks2_headers_are_told_apart_by_subsystem() {
    let key = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(key.path(), b"not a secret").unwrap();
    let key_path = key.path().to_str().unwrap().to_string();
    let luks = |extra: &[&str]| {
        let mut args = vec![
            "luksFormat",
            "--batch-mode",
            "--type",
            "luks2",
            "--pbkdf",
            "pbkdf2",
            "--pbkdf-force-iterations",
            "1000",
            "--key-file",
            &key_path,
        ];
        args.extend_from_slice(extra);
        made_by("cryptsetup", &args, 32 << 20)
    };
    let Some(ours) = luks(&["--subsystem", LUKS2_SUBSYSTEM]) else {
        return;
    };
    assert_eq!(probe(ours.path()).unwrap(), Verdict::Ours);
    let Some(theirs) = luks(&["--label", "scratchcrypt"]) else {
        return;
    };
    assert!(
        matches!(probe(theirs.path()).unwrap(), Verdict::Foreign(f) if f.kind == "crypto_LUKS")
    );
}

#[test]
fn a_missing_source_is_an_error_naming_it() {
    let e = probe(Path::new("/nonexistent/disk")).unwrap_err();
    assert!(e.to_string().contains("/nonexistent/disk"), "{e}");
}
