//! Names for ext4 blocks ("inode table of group 3"), read from `dumpe2fs` and `debugfs` run on
//! an image file, so that a failing test can say what the block it was refused is.
//!
//! Run the tools on the image, never on the strict device: they read bitmaps and inode tables,
//! and on the device those reads would be logged as refused reads of their own.

use std::path::Path;
use std::process::Command;

/// One named range of file-system blocks.
#[derive(Debug, Clone)]
struct Region {
    first: u64,
    last: u64,
    what: String,
}

/// The metadata layout of an ext4 file system.
#[derive(Debug, Clone)]
pub struct Ext4Layout {
    /// File-system block size in bytes.
    pub block_size: u64,
    regions: Vec<Region>,
    image: std::path::PathBuf,
}

/// Parse `a` or `a-b` as an inclusive range.
fn range(text: &str) -> Option<(u64, u64)> {
    let text = text.trim().trim_end_matches(',');
    match text.split_once('-') {
        Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
        None => text.parse().ok().map(|a| (a, a)),
    }
}

impl Ext4Layout {
    /// Read the layout of the ext4 file system in `image`.
    pub fn read(image: &Path) -> Result<Ext4Layout, String> {
        let out = Command::new("dumpe2fs")
            .arg(image)
            .output()
            .map_err(|e| format!("dumpe2fs {}: {e}", image.display()))?;
        if !out.status.success() {
            return Err(format!("dumpe2fs {}: {}", image.display(), out.status));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let mut layout = Ext4Layout {
            block_size: 0,
            regions: Vec::new(),
            image: image.to_path_buf(),
        };
        let mut group = String::new();
        let push = |regions: &mut Vec<Region>, spec: &str, what: String| {
            if let Some((first, last)) = range(spec) {
                regions.push(Region { first, last, what });
            }
        };
        for line in text.lines() {
            let line = line.trim();
            if let Some(v) = line.strip_prefix("Block size:") {
                layout.block_size = v.trim().parse().unwrap_or(0);
            } else if let Some(rest) = line.strip_prefix("Group ") {
                // "Group 1: (Blocks 32768-65535) csum 0x3865 [INODE_UNINIT, BLOCK_UNINIT]"
                let number = rest.split(':').next().unwrap_or("?");
                let flags = rest
                    .split_once('[')
                    .map(|(_, f)| format!(" [{}", f))
                    .unwrap_or_default();
                group = format!("group {number}{flags}");
            } else {
                for part in line.split(", ") {
                    for (prefix, what) in [
                        ("Primary superblock at ", "primary superblock"),
                        ("Backup superblock at ", "backup superblock"),
                        ("Group descriptors at ", "group descriptors"),
                        ("Reserved GDT blocks at ", "reserved GDT blocks"),
                        ("Block bitmap at ", "block bitmap"),
                        ("Inode bitmap at ", "inode bitmap"),
                        ("Inode table at ", "inode table"),
                    ] {
                        if let Some(spec) = part.strip_prefix(prefix) {
                            let spec = spec.split_whitespace().next().unwrap_or("");
                            push(&mut layout.regions, spec, format!("{what} of {group}"));
                        }
                    }
                }
            }
        }
        if layout.block_size == 0 {
            return Err(format!("dumpe2fs {}: no block size", image.display()));
        }
        layout.add_inode_extents(8, "journal");
        Ok(layout)
    }

    /// Add the extents of inode `ino` (from `debugfs stat`) as regions named `what`.
    fn add_inode_extents(&mut self, ino: u32, what: &str) {
        let Ok(out) = Command::new("debugfs")
            .arg("-R")
            .arg(format!("stat <{ino}>"))
            .arg(&self.image)
            .output()
        else {
            return;
        };
        let text = String::from_utf8_lossy(&out.stdout);
        let Some((_, extents)) = text.split_once("EXTENTS:") else {
            return;
        };
        // Entries look like "(0-4095):65536-69631" or "(ETB0):1234".
        for entry in extents.split_whitespace() {
            if let Some((logical, physical)) = entry.split_once("):") {
                if !logical.contains("ETB") {
                    if let Some((first, last)) = range(physical) {
                        let what = format!("{what} (file blocks {})", &logical[1..]);
                        self.regions.push(Region { first, last, what });
                    }
                }
            }
        }
    }

    /// The byte ranges `(offset, len)` that the rule says must be written before anything reads
    /// them but that mke2fs leaves as holes in an image: every block and inode bitmap, every
    /// inode table and the journal. Adjacent ranges are merged.
    pub fn metadata_ranges(&self) -> Vec<(u64, u64)> {
        self.ranges_of(&["block bitmap", "inode bitmap", "inode table", "journal"])
    }

    /// The byte ranges `(offset, len)` of the regions whose name starts with one of `kinds`
    /// ("block bitmap", "inode bitmap", "inode table", "journal", "group descriptors", ...),
    /// adjacent ones merged.
    pub fn ranges_of(&self, kinds: &[&str]) -> Vec<(u64, u64)> {
        let mut blocks: Vec<(u64, u64)> = self
            .regions
            .iter()
            .filter(|r| kinds.iter().any(|w| r.what.starts_with(w)))
            .map(|r| (r.first, r.last))
            .collect();
        blocks.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::new();
        for (first, last) in blocks {
            match merged.last_mut() {
                Some(prev) if first <= prev.1 + 1 => prev.1 = prev.1.max(last),
                _ => merged.push((first, last)),
            }
        }
        merged
            .into_iter()
            .map(|(f, l)| (f * self.block_size, (l - f + 1) * self.block_size))
            .collect()
    }

    /// Every named region as `(first block, last block, what)`, inclusive, in the order read:
    /// superblocks, descriptors, reserved GDT blocks, bitmaps and inode tables per group, then
    /// the journal's extents. `what` starts with the kind, e.g. "inode table of group 3 [...]".
    pub fn regions(&self) -> Vec<(u64, u64, String)> {
        self.regions
            .iter()
            .map(|r| (r.first, r.last, r.what.clone()))
            .collect()
    }

    /// What file-system block `block` is, e.g. "inode table of group 3 [ITABLE_ZEROED]".
    pub fn describe_fs_block(&self, block: u64) -> String {
        match self
            .regions
            .iter()
            .find(|r| r.first <= block && block <= r.last)
        {
            Some(r) => format!(
                "{} (block {} of {}-{})",
                r.what,
                block - r.first,
                r.first,
                r.last
            ),
            None => self.owner_of(block),
        }
    }

    /// Describe a device block of `device_block_size` bytes by the file-system blocks in it.
    pub fn describe_device_block(&self, block: u64, device_block_size: u64) -> String {
        let first = block * device_block_size / self.block_size;
        let count = (device_block_size / self.block_size).max(1);
        (first..first + count)
            .map(|b| format!("fs block {b} = {}", self.describe_fs_block(b)))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Ask debugfs which inode owns a block outside the fixed metadata.
    fn owner_of(&self, block: u64) -> String {
        let out = Command::new("debugfs")
            .arg("-R")
            .arg(format!("icheck {block}"))
            .arg(&self.image)
            .output();
        let owner = out.ok().and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .nth(1)
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
        });
        match owner {
            Some(ino) if ino.starts_with('<') => "free or unused block in the image".to_string(),
            Some(ino) => format!("data of inode {ino} in the image"),
            None => "unknown block".to_string(),
        }
    }
}
