//! `scratchcrypt status [NAME] [--json]`: one mapping's growth state, or every scratchcrypt
//! mapping of the machine with its source, size and mount point.
//!
//! The list comes from sysfs, not from device-mapper ioctls, so that it needs no privilege to
//! find the mappings: a scratchcrypt mapping is a `dm-N` whose dm UUID is `CRYPT-LUKS2-...`
//! and whose only slave is the dm-integrity device `<name>_dif` (UUID `CRYPT-INTEGRITY-` or
//! `CRYPT-SUBDEV-`); the source is that device's slave. A LUKS2 + integrity mapping opened by
//! cryptsetup has the same stack and is listed too. Mount points come from
//! `/proc/self/mountinfo` (by device number), the growth state from the library's
//! [`scratchcrypt::growth_status`].

use std::fs;
use std::path::{Path, PathBuf};

use clap::Args;
use serde::Serialize;

use scratchcrypt::{Error, MappingName};

use crate::progress::human_bytes;

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The mapping name; without it, every scratchcrypt mapping is listed.
    name: Option<MappingName>,
    /// Print JSON: one object for NAME, an array of objects for the list.
    #[arg(long)]
    json: bool,
}

/// A mapping found in sysfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The dm name of the crypt device.
    pub name: String,
    /// `/dev/<kernel name>` of the disk under the integrity device.
    pub source: Option<PathBuf>,
    /// Size of the crypt device in bytes.
    pub size_bytes: u64,
    /// `major:minor` of the crypt device.
    pub dev: String,
}

/// One line of the list (and one object of its JSON).
#[derive(Debug, Serialize)]
struct Row {
    name: String,
    mapper: PathBuf,
    source: Option<PathBuf>,
    size_bytes: u64,
    mountpoint: Option<PathBuf>,
    fs_bytes: Option<u64>,
    target_bytes: Option<u64>,
    growing: Option<bool>,
}

pub fn run(a: StatusArgs) -> Result<(), Error> {
    match a.name {
        Some(name) => one(&name, a.json),
        None => list(a.json),
    }
}

fn one(name: &MappingName, json: bool) -> Result<(), Error> {
    let status = scratchcrypt::growth_status(name)?;
    if json {
        crate::print_json(&serde_json::json!({
            "name": name.as_str(),
            "mapper": name.mapper_path(),
            "fs_bytes": status.fs_bytes,
            "target_bytes": status.target_bytes,
            "growing": status.growing,
            "mounted_at": status.mount,
        }));
    } else {
        println!(
            "{}: {} of {}{}",
            name.mapper_path().display(),
            human_bytes(status.fs_bytes),
            human_bytes(status.target_bytes),
            if status.growing { ", growing" } else { "" }
        );
    }
    Ok(())
}

fn list(json: bool) -> Result<(), Error> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let rows: Vec<Row> = find_mappings(Path::new("/sys/block"))
        .into_iter()
        .map(|f| {
            let growth = MappingName::new(&f.name)
                .ok()
                .and_then(|n| scratchcrypt::growth_status(&n).ok());
            Row {
                mapper: Path::new("/dev/mapper").join(&f.name),
                mountpoint: mount_point(&mountinfo, &f.dev),
                fs_bytes: growth.as_ref().map(|g| g.fs_bytes),
                target_bytes: growth.as_ref().map(|g| g.target_bytes),
                growing: growth.as_ref().map(|g| g.growing),
                name: f.name,
                source: f.source,
                size_bytes: f.size_bytes,
            }
        })
        .collect();
    if json {
        crate::print_json(&rows);
        return Ok(());
    }
    if rows.is_empty() {
        return Ok(());
    }
    println!(
        "{:<24} {:<14} {:>10} {:<24} GROWTH",
        "NAME", "SOURCE", "SIZE", "MOUNTPOINT"
    );
    for r in &rows {
        let growth = match (r.fs_bytes, r.target_bytes, r.growing) {
            (Some(fs), Some(target), Some(growing)) if fs < target || growing => format!(
                "{} of {}{}",
                human_bytes(fs),
                human_bytes(target),
                if growing { ", growing" } else { ", stopped" }
            ),
            (Some(_), Some(_), Some(_)) => "full size".to_string(),
            _ => "-".to_string(),
        };
        println!(
            "{:<24} {:<14} {:>10} {:<24} {growth}",
            r.name,
            r.source
                .as_ref()
                .map_or_else(|| "-".into(), |p| p.display().to_string()),
            human_bytes(r.size_bytes),
            r.mountpoint
                .as_ref()
                .map_or_else(|| "-".into(), |p| p.display().to_string()),
        );
    }
    Ok(())
}

fn read_trim(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

/// The kernel names under `dir/slaves`.
fn slaves(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir.join("slaves"))
        .map(|it| {
            it.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The scratchcrypt mappings under `sys_block` (normally `/sys/block`), sorted by name.
pub fn find_mappings(sys_block: &Path) -> Vec<Found> {
    let Ok(entries) = fs::read_dir(sys_block) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for e in entries.filter_map(|e| e.ok()) {
        let dir = e.path();
        let (Some(name), Some(uuid)) = (
            read_trim(&dir.join("dm/name")),
            read_trim(&dir.join("dm/uuid")),
        ) else {
            continue;
        };
        if !uuid.starts_with("CRYPT-LUKS2-") {
            continue;
        }
        let under = slaves(&dir);
        let [dif] = under.as_slice() else { continue };
        let dif_dir = sys_block.join(dif);
        let dif_name = read_trim(&dif_dir.join("dm/name"));
        let dif_uuid = read_trim(&dif_dir.join("dm/uuid")).unwrap_or_default();
        if dif_name.as_deref() != Some(&format!("{name}_dif"))
            || !(dif_uuid.starts_with("CRYPT-INTEGRITY-") || dif_uuid.starts_with("CRYPT-SUBDEV-"))
        {
            continue;
        }
        let source = match slaves(&dif_dir).as_slice() {
            [disk] => Some(Path::new("/dev").join(disk)),
            _ => None,
        };
        let size_bytes = read_trim(&dir.join("size"))
            .and_then(|s| s.parse::<u64>().ok())
            .map_or(0, |sectors| sectors * 512);
        found.push(Found {
            name,
            source,
            size_bytes,
            dev: read_trim(&dir.join("dev")).unwrap_or_default(),
        });
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    found
}

/// The first mount point of device `dev` (`major:minor`) in a mountinfo text.
pub fn mount_point(mountinfo: &str, dev: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let mut fields = line.split(' ');
        let (_id, _parent, devno, _root, point) = (
            fields.next()?,
            fields.next()?,
            fields.next()?,
            fields.next()?,
            fields.next()?,
        );
        (devno == dev).then(|| PathBuf::from(unescape(point)))
    })
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn dm(
        sys: &Path,
        kname: &str,
        name: &str,
        uuid: &str,
        sectors: u64,
        dev: &str,
        under: &[&str],
    ) {
        let d = sys.join(kname);
        fs::create_dir_all(d.join("dm")).unwrap();
        fs::create_dir_all(d.join("slaves")).unwrap();
        fs::write(d.join("dm/name"), format!("{name}\n")).unwrap();
        fs::write(d.join("dm/uuid"), format!("{uuid}\n")).unwrap();
        fs::write(d.join("size"), format!("{sectors}\n")).unwrap();
        fs::write(d.join("dev"), format!("{dev}\n")).unwrap();
        for s in under {
            fs::create_dir_all(d.join("slaves").join(s)).unwrap();
        }
    }

    fn disk(sys: &Path, kname: &str) {
        fs::create_dir_all(sys.join(kname).join("slaves")).unwrap();
    }

    /// Only crypt-over-integrity stacks named `<name>` over `<name>_dif` are listed, with the
    /// disk under the integrity device as their source.
    #[test]
    fn finds_crypt_over_integrity_stacks_only() {
        let tmp = tempfile::tempdir().unwrap();
        let sys = tmp.path();
        disk(sys, "vdb");
        disk(sys, "vdc");
        dm(
            sys,
            "dm-0",
            "scratch_dif",
            "CRYPT-INTEGRITY-abc-scratch_dif",
            2_000,
            "254:0",
            &["vdb"],
        );
        dm(
            sys,
            "dm-1",
            "scratch",
            "CRYPT-LUKS2-abc-scratch",
            2_000,
            "254:1",
            &["dm-0"],
        );
        // Newer cryptsetup's subdevice UUID.
        dm(
            sys,
            "dm-4",
            "b_dif",
            "CRYPT-SUBDEV-def-b_dif",
            10,
            "254:4",
            &["vdc"],
        );
        dm(sys, "dm-5", "b", "CRYPT-LUKS2-def-b", 8, "254:5", &["dm-4"]);
        // A plain LUKS2 mapping without integrity, an LVM volume, a crypt over a wrong name.
        dm(
            sys,
            "dm-2",
            "plain",
            "CRYPT-LUKS2-xyz-plain",
            100,
            "254:2",
            &["vdc"],
        );
        dm(sys, "dm-3", "vg-lv", "LVM-abc", 100, "254:3", &["vdc"]);
        dm(
            sys,
            "dm-6",
            "odd",
            "CRYPT-LUKS2-q-odd",
            100,
            "254:6",
            &["dm-0"],
        );
        let found = find_mappings(sys);
        assert_eq!(
            found,
            vec![
                Found {
                    name: "b".into(),
                    source: Some("/dev/vdc".into()),
                    size_bytes: 8 * 512,
                    dev: "254:5".into()
                },
                Found {
                    name: "scratch".into(),
                    source: Some("/dev/vdb".into()),
                    size_bytes: 2_000 * 512,
                    dev: "254:1".into()
                },
            ]
        );
        assert!(find_mappings(&sys.join("missing")).is_empty());
    }

    #[test]
    fn mount_point_by_device_number_unescaped() {
        let info = "\
22 1 254:10 / /other rw - ext4 /dev/x rw
23 1 254:1 / /mnt/my\\040scratch rw,relatime shared:1 - ext4 /dev/mapper/scratch rw
24 1 254:1 / /again rw - ext4 /dev/mapper/scratch rw
";
        assert_eq!(
            mount_point(info, "254:1"),
            Some(PathBuf::from("/mnt/my scratch"))
        );
        assert_eq!(mount_point(info, "254:10"), Some(PathBuf::from("/other")));
        assert_eq!(mount_point(info, "254:2"), None);
        assert_eq!(unescape("a\\134b\\011"), "a\\b\t");
        assert_eq!(unescape("end\\04"), "end\\04");
    }
}
