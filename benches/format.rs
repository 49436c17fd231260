//! Building the ext4 image with libext2fs (`scratchcrypt::format::build_image`) against
//! `mke2fs -t ext4` on a sparse file of the same size, at 1 GiB, 1 TiB and 16 TiB.
//! Images live on tmpfs (`/dev/shm`): ext4 cannot hold a 16 TiB file and ramfs has no holes.
//! Before the timed runs, one build per size prints the image bytes, and the peak RSS of a
//! child process that does nothing but that build (this binary re-executed), next to mke2fs'.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::fs::File;
use std::path::Path;
use std::process::Command;

use criterion::{criterion_group, Criterion};
use scratchcrypt::format::{build_image, FormatOptions};

const SIZES: &[(&str, u64)] = &[("1GiB", 1 << 30), ("1TiB", 1 << 40), ("16TiB", 16 << 40)];

fn allocated(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).unwrap().blocks() * 512
}

/// Environment variable that turns this binary into a one-shot child: build one image of the
/// given size, so that its peak RSS can be read alone with wait4.
const CHILD: &str = "SCRATCHCRYPT_BENCH_BUILD_SIZE";

/// Wait for `child` with wait4 and return its peak RSS in KiB.
fn wait_max_rss_kib(child: std::process::Child) -> i64 {
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: getrusage-style out struct, zero-initialised plain data.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our unwaited child; `status` and `ru` are live out parameters.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    assert_eq!(r, pid);
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    std::mem::forget(child);
    ru.ru_maxrss
}

fn mke2fs(path: &Path, size: u64) {
    File::create(path).unwrap().set_len(size).unwrap();
    let st = Command::new("mke2fs")
        .args(["-q", "-F", "-t", "ext4"])
        .arg(path)
        .status()
        .unwrap();
    assert!(st.success());
}

fn report(dir: &Path) {
    let ours = dir.join("ours.img");
    let theirs = dir.join("mke2fs.img");
    for &(name, size) in SIZES {
        let child = Command::new(std::env::current_exe().unwrap())
            .env(CHILD, format!("{size}"))
            .env("SCRATCHCRYPT_BENCH_IMAGE", &ours)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let our_rss = wait_max_rss_kib(child);
        let plan = build_image(&ours, size, &FormatOptions::default()).unwrap();
        File::create(&theirs).unwrap().set_len(size).unwrap();
        let started = std::time::Instant::now();
        let child = Command::new("mke2fs")
            .args(["-q", "-F", "-t", "ext4"])
            .arg(&theirs)
            .spawn()
            .unwrap();
        let their_rss = wait_max_rss_kib(child);
        let their_time = started.elapsed();
        println!(
            "format {name}: build_image {:.3} s, image data {} bytes (allocated {}), {} zero ranges ({} bytes), peak RSS {} KiB | mke2fs {:.3} s, image allocated {} bytes, peak RSS {} KiB",
            plan.elapsed.as_secs_f64(),
            plan.image_data_bytes,
            allocated(&ours),
            plan.zero_ranges.len(),
            plan.zero_bytes,
            our_rss,
            their_time.as_secs_f64(),
            allocated(&theirs),
            their_rss,
        );
    }
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir_in("/dev/shm").unwrap();
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this binary without it.
    if std::env::args().any(|a| a == "--bench") {
        report(dir.path());
    }
    let ours = dir.path().join("ours.img");
    let theirs = dir.path().join("mke2fs.img");
    let mut g = c.benchmark_group("format");
    g.sample_size(10);
    for &(name, size) in SIZES {
        g.bench_function(format!("build_image/{name}"), |b| {
            b.iter(|| build_image(&ours, size, &FormatOptions::default()).unwrap())
        });
        g.bench_function(format!("mke2fs/{name}"), |b| {
            b.iter(|| mke2fs(&theirs, size))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);

fn main() {
    if let Ok(size) = std::env::var(CHILD) {
        let image = std::env::var_os("SCRATCHCRYPT_BENCH_IMAGE").unwrap();
        build_image(
            Path::new(&image),
            size.parse().unwrap(),
            &FormatOptions::default(),
        )
        .unwrap();
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
