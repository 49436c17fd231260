//! Benchmarks of the extent copier (results in docs/BENCHMARKS.md, "Sparse copy").
//!
//! - `sparse_copy`: the data extents of a 1 TiB sparse image holding 4 MiB of data, copied with
//!   `copy_extents` onto a loop device and onto a file, against a raw `pwrite` of the same bytes
//!   at the same offsets (data already in memory, no lseek) followed by the same `fsync`.
//!   Goal: the copy reaches at least 90% of the raw throughput.
//! - `zero_ranges`: 256 MiB in 16 ranges zeroed on a loop device with `BLKZEROOUT` and with
//!   `pwrite` of a zero buffer, against one raw sequential `pwrite` of the same bytes. Run once
//!   with the loop device's backing file on the temp dir's file system (ext4 here: loop turns
//!   WRITE_ZEROES into `fallocate(ZERO_RANGE)`) and once on /dev/shm (tmpfs, where the kernel
//!   falls back to writing zero pages, as it does on dm-crypt).
//!
//! Loop devices need root; without it only the file benchmarks run.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::fs::{File, OpenOptions};
use std::hint::black_box;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use scratchcrypt::loopdev::LoopDevice;
use scratchcrypt::sparse::{copy_extents, zero_ranges_with, ZeroMethod};

const MIB: u64 = 1 << 20;
const TIB: u64 = 1 << 40;

/// The image's extents: 1 MiB at the start, then 48 extents of 64 KiB spread over the whole
/// terabyte (like block-group metadata), 4 MiB in all.
fn image_extents() -> Vec<Range<u64>> {
    let mut v = Vec::with_capacity(49);
    v.push(0..MIB);
    let stride = (TIB - MIB) / 48 / MIB * MIB;
    v.extend((1..=48).map(|i| i * stride..i * stride + 64 * 1024));
    v
}

fn sparse_file(path: &Path, size: u64) -> File {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .unwrap();
    f.set_len(size).unwrap();
    f
}

fn open_rw(path: &Path) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap()
}

fn can_loop() -> bool {
    let ok = nix::unistd::geteuid().is_root() && Path::new("/dev/loop-control").exists();
    if !ok {
        eprintln!("skip loop-device benchmarks: needs root and /dev/loop-control");
    }
    ok
}

/// Raw reference: write each extent's bytes (already in memory) at its offset, then fsync.
fn raw_pwrite(dst: &File, chunks: &[(u64, Vec<u8>)]) {
    for (off, data) in chunks {
        dst.write_all_at(data, *off).unwrap();
    }
    dst.sync_all().unwrap();
}

fn bench_copy(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let img_path = dir.path().join("image");
    let img = sparse_file(&img_path, TIB);
    let extents = image_extents();
    let mut chunks = Vec::new();
    for r in &extents {
        let data: Vec<u8> = r.clone().map(|o| (o % 251) as u8 + 1).collect();
        img.write_all_at(&data, r.start).unwrap();
        chunks.push((r.start, data));
    }
    img.sync_all().unwrap();
    let bytes: u64 = extents.iter().map(|r| r.end - r.start).sum();

    let mut g = c.benchmark_group("sparse_copy");
    g.throughput(Throughput::Bytes(bytes))
        .sample_size(20)
        .measurement_time(Duration::from_secs(5));

    let file_path = dir.path().join("dst-file");
    let file = sparse_file(&file_path, TIB);
    g.bench_function("copy_extents_to_file", |b| {
        b.iter(|| {
            black_box(
                copy_extents(
                    &img,
                    &img_path,
                    &file,
                    &file_path,
                    &mut scratchcrypt::sparse::no_progress,
                )
                .unwrap(),
            )
        })
    });
    g.bench_function("raw_pwrite_to_file", |b| {
        b.iter(|| raw_pwrite(&file, &chunks))
    });

    if can_loop() {
        let backing = dir.path().join("loop-backing");
        drop(sparse_file(&backing, TIB));
        let dev = LoopDevice::attach(&backing, 4096).unwrap();
        let dst = open_rw(dev.path());
        let dev_path = dev.path().to_path_buf();
        g.bench_function("copy_extents_to_loop", |b| {
            b.iter(|| {
                black_box(
                    copy_extents(
                        &img,
                        &img_path,
                        &dst,
                        &dev_path,
                        &mut scratchcrypt::sparse::no_progress,
                    )
                    .unwrap(),
                )
            })
        });
        g.bench_function("raw_pwrite_to_loop", |b| {
            b.iter(|| raw_pwrite(&dst, &chunks))
        });
    }
    g.finish();
}

/// 16 ranges of 16 MiB, one every 64 MiB (like inode tables).
fn zero_set() -> Vec<Range<u64>> {
    (0..16)
        .map(|i| i * 64 * MIB..i * 64 * MIB + 16 * MIB)
        .collect()
}

fn bench_zero_on(c: &mut Criterion, label: &str, backing_dir: &Path) {
    let backing: PathBuf =
        backing_dir.join(format!("scratchcrypt-bench-zero-{}", std::process::id()));
    drop(sparse_file(&backing, 1024 * MIB));
    let dev = LoopDevice::attach(&backing, 4096).unwrap();
    let dst = open_rw(dev.path());
    let dev_path = dev.path().to_path_buf();
    let ranges = zero_set();
    let bytes: u64 = ranges.iter().map(|r| r.end - r.start).sum();

    let mut g = c.benchmark_group(format!("zero_ranges_{label}"));
    g.throughput(Throughput::Bytes(bytes))
        .sample_size(10)
        .measurement_time(Duration::from_secs(8));
    for (name, method) in [
        ("blkzeroout", ZeroMethod::BlkZeroOut),
        ("pwrite", ZeroMethod::Pwrite),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                black_box(
                    zero_ranges_with(
                        &dst,
                        &dev_path,
                        &ranges,
                        method,
                        &mut scratchcrypt::sparse::no_progress,
                    )
                    .unwrap(),
                )
            })
        });
    }
    let zeros = vec![0u8; 4 * MIB as usize];
    g.bench_function("raw_sequential_pwrite", |b| {
        b.iter(|| {
            let mut off = 0;
            while off < bytes {
                dst.write_all_at(&zeros, off).unwrap();
                off += zeros.len() as u64;
            }
            dst.sync_all().unwrap();
        })
    });
    g.finish();
    drop(dst);
    drop(dev);
    let _ = std::fs::remove_file(&backing);
}

fn bench_zero(c: &mut Criterion) {
    if !can_loop() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    bench_zero_on(c, "tmpdir", dir.path());
    bench_zero_on(c, "shm", Path::new("/dev/shm"));
}

criterion_group!(benches, bench_copy, bench_zero);
criterion_main!(benches);
