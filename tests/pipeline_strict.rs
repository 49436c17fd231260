//! The real pipeline on the strict-read device: `pipeline::encrypt_with` with the LUKS and
//! device-mapper mocks, whose "mapping" is the FUSE strict loop device on which every read of a
//! never-written block fails (as on an unwiped dm-integrity device). Then a fresh `e2fsck -fn`
//! with the kernel's default read-ahead, the coverage check (every block the rule names was
//! written), and the stress (parallel waves, `drop_caches`, crash + journal replay, e2fsck).
//!
//! The mutation controls run the same pipeline with one part of what it zeroes removed through
//! the test hook `System::zero_filter`, and require the verdict to catch it, by the catcher that
//! is certain for that defect:
//!
//! | control | removed | caught by |
//! | --- | --- | --- |
//! | drop one range | the plan range holding group 0's inode table | coverage (the stress only by a race) |
//! | skip bitmaps | every bitmap block, from the plan and the final list | coverage (nothing reads an UNINIT bitmap on 6.x) |
//! | skip margins | read-ahead margins and tail | fresh e2fsck with read-ahead |
//! | skip journal | the journal's blocks | coverage and the journal replay after the crash |
//!
//! Removing the bitmaps from the plan alone is an equivalent mutant: with flex_bg 16 every
//! bitmap block of a flex group lies within 32 blocks (128 KiB) after the first group's block
//! bitmap, which is data in the image, so the read-ahead margin after it zeroes them anyway.
//! The bitmap control therefore removes them from the final list as well.
//!
//! Size: a 1 GiB source (8 block groups, 7 of them `*_UNINIT`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::cell::RefCell;
use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use scratchcrypt::dm::MockDm;
use scratchcrypt::luks::{LuksFormatter, MockFormatter};
use scratchcrypt::pipeline::{encrypt_with, System, ZeroStage};
use scratchcrypt::{EncryptOptions, MappingName};

use support::coverage::{self, Unwritten};
use support::ext4_layout::Ext4Layout;
use support::privileged;
use support::stress::{run_stress, StressConfig, StressReport};
use support::strict_device::{RefusedRead, StrictDevice};
use support::strict_devices::StrictDevices;

const MIB: u64 = 1024 * 1024;

/// Source size; the mock formatter leaves about 1/64 for integrity metadata.
const SOURCE_SIZE: u64 = 1024 * MIB;

/// Read-ahead of the fresh e2fsck: the kernel's default (`VM_READAHEAD_PAGES`).
const FRESH_FSCK_READ_AHEAD_KB: u32 = 128;

/// What a mutation control removes from what the pipeline zeroes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mutation {
    None,
    /// Drop the whole plan range that holds the first block of group 0's inode table.
    DropInodeTableRange,
    /// Remove every block bitmap and inode bitmap block from the plan's ranges.
    SkipBitmaps,
    /// Zero only the plan's ranges: no read-ahead margins, no tail.
    SkipMargins,
    /// Remove the journal's blocks from the plan's ranges.
    SkipJournal,
}

/// `ranges` minus the byte ranges `holes`.
fn subtract(ranges: Vec<Range<u64>>, holes: &[(u64, u64)]) -> Vec<Range<u64>> {
    let mut out = ranges;
    for &(start, len) in holes {
        let hole = start..start + len;
        out = out
            .into_iter()
            .flat_map(|r| {
                if r.end <= hole.start || hole.end <= r.start {
                    vec![r]
                } else {
                    [r.start..hole.start, hole.end..r.end]
                        .into_iter()
                        .filter(|p| p.start < p.end)
                        .collect()
                }
            })
            .collect();
    }
    out
}

/// Everything one run of the pipeline on the strict device gave.
struct Outcome {
    dev: StrictDevice,
    _tmp: tempfile::TempDir,
    /// A sparse copy of the pipeline's own image, taken when the zero filter ran.
    image: PathBuf,
    layout: Ext4Layout,
    /// Plan ranges before and after the mutation.
    plan: Vec<Range<u64>>,
    mutated_plan: Vec<Range<u64>>,
    /// The final list to zero (plan, margins, tail) before and after the mutation.
    device_in: Vec<Range<u64>>,
    device_out: Vec<Range<u64>>,
    refused_while_encrypting: Vec<RefusedRead>,
    unwritten: Vec<Unwritten>,
    fresh_fsck_refused: Vec<RefusedRead>,
    fresh_fsck_status: i32,
    encrypt_seconds: f64,
}

/// State the zero filter keeps between its two calls.
#[derive(Default)]
struct FilterState {
    image_copy: Option<PathBuf>,
    layout: Option<Ext4Layout>,
    plan: Vec<Range<u64>>,
    mutated: Vec<Range<u64>>,
    device_in: Vec<Range<u64>>,
    device_out: Vec<Range<u64>>,
}

/// Run `encrypt_with` on a fresh strict device with `mutation` applied, then the fresh e2fsck
/// with read-ahead and the coverage check (no stress yet).
fn encrypt_on_strict_device(mutation: Mutation) -> Outcome {
    let tmp = tempfile::tempdir().unwrap();
    let source = tmp.path().join("source.img");
    File::create(&source).unwrap().set_len(SOURCE_SIZE).unwrap();
    let temp_base = tmp.path().join("tmp");
    std::fs::create_dir(&temp_base).unwrap();
    let copy = tmp.path().join("image-copy.ext4");

    let state = RefCell::new(FilterState::default());
    let filter = |stage: ZeroStage, image: &Path, ranges: Vec<Range<u64>>| -> Vec<Range<u64>> {
        let mut st = state.borrow_mut();
        match stage {
            ZeroStage::Plan => {
                // Keep the pipeline's own image: the layout and the failure messages use it.
                let status = Command::new("cp")
                    .arg("--sparse=always")
                    .arg(image)
                    .arg(&copy)
                    .status()
                    .unwrap();
                assert!(status.success(), "cp of the image failed: {status}");
                let layout = Ext4Layout::read(&copy).unwrap();
                st.plan = ranges.clone();
                let mutated = match mutation {
                    Mutation::None | Mutation::SkipMargins => ranges,
                    Mutation::DropInodeTableRange => {
                        let (first, _, what) = layout
                            .regions()
                            .into_iter()
                            .find(|(_, _, w)| w.starts_with("inode table of group 0"))
                            .expect("no inode table of group 0 in the layout");
                        let at = first * layout.block_size;
                        let before = ranges.len();
                        let kept: Vec<_> =
                            ranges.into_iter().filter(|r| !r.contains(&at)).collect();
                        assert_eq!(kept.len() + 1, before, "no plan range holds {what}");
                        kept
                    }
                    Mutation::SkipBitmaps => {
                        subtract(ranges, &layout.ranges_of(&["block bitmap", "inode bitmap"]))
                    }
                    Mutation::SkipJournal => subtract(ranges, &layout.ranges_of(&["journal"])),
                };
                st.mutated = mutated.clone();
                st.layout = Some(layout);
                st.image_copy = Some(copy.clone());
                mutated
            }
            ZeroStage::Device => {
                st.device_in = ranges.clone();
                let out = match mutation {
                    Mutation::SkipMargins => st.mutated.clone(),
                    // The margins after group 0's bitmaps (data in the image) cover the
                    // bitmaps the image leaves as holes: take them out of the final list too.
                    Mutation::SkipBitmaps => {
                        let bitmaps = st
                            .layout
                            .as_ref()
                            .map(|l| l.ranges_of(&["block bitmap", "inode bitmap"]))
                            .unwrap_or_default();
                        subtract(ranges, &bitmaps)
                    }
                    _ => ranges,
                };
                st.device_out = out.clone();
                out
            }
        }
    };

    let luks = MockFormatter::new();
    let dm = MockDm::new();
    let devices = StrictDevices {
        strict: RefCell::new(None),
    };
    let system = System {
        luks: &luks,
        dm: &dm,
        devices: &devices,
        zero_filter: Some(&filter),
    };
    let options = EncryptOptions {
        temp_dir: Some(temp_base.clone()),
        wait_timeout: Duration::ZERO,
        ..EncryptOptions::default()
    };
    let name = MappingName::new("strict").unwrap();
    let started = Instant::now();
    let result = encrypt_with(&system, &source, &name, &options);
    let encrypt_seconds = started.elapsed().as_secs_f64();
    let dev = devices
        .strict
        .borrow_mut()
        .take()
        .expect("the pipeline never opened the mapping");
    let report = result.unwrap_or_else(|e| panic!("encrypt_with failed: {e}"));
    // The pipeline ran on this thread: its key must be in none of this thread's keyrings.
    // (The mock formatter always reports the same UUID; asking it again is the way to get it.)
    let description = scratchcrypt::dm_table::keyring_description(
        &luks
            .format(&source, &scratchcrypt::VolumeKey::generate().unwrap())
            .unwrap()
            .uuid,
    );
    let left = support::keys::still_findable(&description);
    assert!(
        left.is_empty(),
        "the volume key is still in a keyring: {left:?}"
    );
    let dev_file = File::open(dev.device_path()).unwrap();
    assert_eq!(
        report.mapping_bytes,
        scratchcrypt::blockdev::size_bytes(&dev_file).unwrap(),
        "the report's mapping size is not the device's"
    );
    drop(dev_file);
    let st = state.into_inner();
    let layout = st.layout.expect("the zero filter never ran");
    let image = st.image_copy.expect("the zero filter never ran");

    let refused_while_encrypting = dev.refused_reads();
    let unwritten = coverage::unwritten_metadata(&dev, &layout);

    // A fresh mapping read by e2fsck with the kernel's default read-ahead: the margins must keep
    // its speculative reads on written blocks (docs/DESIGN.md, "Read-ahead").
    let seen = dev.refused_reads().len();
    support::stress::drop_caches();
    dev.set_read_ahead_kb(FRESH_FSCK_READ_AHEAD_KB).unwrap();
    let out = Command::new("e2fsck")
        .arg("-fn")
        .arg(dev.device_path())
        .output()
        .unwrap();
    dev.set_read_ahead_kb(0).unwrap();
    support::stress::drop_caches();
    let fresh_fsck_refused = dev.refused_reads()[seen..].to_vec();
    let fresh_fsck_status = out.status.code().unwrap_or(-1);

    Outcome {
        dev,
        _tmp: tmp,
        image,
        layout,
        plan: st.plan,
        mutated_plan: st.mutated,
        device_in: st.device_in,
        device_out: st.device_out,
        refused_while_encrypting,
        unwritten,
        fresh_fsck_refused,
        fresh_fsck_status,
        encrypt_seconds,
    }
}

/// Every finding of the pre-stress checks, one a line (empty when all passed).
fn pre_stress_findings(o: &Outcome) -> Vec<String> {
    let mut findings = Vec::new();
    if !o.refused_while_encrypting.is_empty() {
        findings.push(format!(
            "the pipeline read {} never-written requests while encrypting: {:?}",
            o.refused_while_encrypting.len(),
            &o.refused_while_encrypting[..o.refused_while_encrypting.len().min(5)]
        ));
    }
    if !o.unwritten.is_empty() {
        findings.push(format!(
            "coverage: {} runs of metadata never written\n{}",
            o.unwritten.len(),
            coverage::describe(&o.unwritten, 20)
        ));
    }
    if !o.fresh_fsck_refused.is_empty() || o.fresh_fsck_status != 0 {
        let blocks: Vec<String> = o
            .fresh_fsck_refused
            .iter()
            .take(5)
            .map(|r| {
                format!(
                    "block {} ({} bytes at {}) = {}",
                    r.block,
                    r.len,
                    r.offset,
                    o.layout.describe_device_block(r.block, o.dev.block_size())
                )
            })
            .collect();
        findings.push(format!(
            "fresh e2fsck -fn with read-ahead {FRESH_FSCK_READ_AHEAD_KB} KiB: status {}, {} refused reads: {}",
            o.fresh_fsck_status,
            o.fresh_fsck_refused.len(),
            blocks.join("; ")
        ));
    }
    findings
}

/// Run the stress on the outcome's device and return its report and the verdict of
/// `check_clean` (Err = caught).
fn stress(o: &Outcome) -> (StressReport, Result<(), String>) {
    stress_with(o, &StressConfig::default())
}

fn stress_with(o: &Outcome, config: &StressConfig) -> (StressReport, Result<(), String>) {
    let config = config.clone();
    // The refusals counted so far were reported above; the stress judges only what follows.
    o.dev.reset_log();
    let report = run_stress(&o.dev, &config);
    let verdict = support::check_clean(&o.dev, &report, Some(&o.image), &config);
    (report, verdict)
}

fn print_summary(label: &str, o: &Outcome, report: &StressReport, stress_caught: bool) {
    let plan_bytes: u64 = o.plan.iter().map(|r| r.end - r.start).sum();
    let mutated_bytes: u64 = o.mutated_plan.iter().map(|r| r.end - r.start).sum();
    eprintln!(
        "{label}: encrypt_with {:.2} s on a {} MiB mapping; plan {} ranges / {} KiB, zeroed plan \
         {} ranges / {} KiB; {} blocks written; refused while encrypting {}; unwritten metadata \
         runs {}; fresh e2fsck (read-ahead {FRESH_FSCK_READ_AHEAD_KB} KiB) status {} refused {}; \
         stress {} ({}), files {}/{}, e2fsck {}, recovery {:?}, {:.1} s",
        o.encrypt_seconds,
        mapping_mib(o),
        o.plan.len(),
        plan_bytes >> 10,
        o.mutated_plan.len(),
        mutated_bytes >> 10,
        o.dev.written_blocks(),
        o.refused_while_encrypting.len(),
        o.unwritten.len(),
        o.fresh_fsck_status,
        o.fresh_fsck_refused.len(),
        if stress_caught { "FAILED" } else { "clean" },
        report.refused_summary(),
        report.files_verified,
        StressConfig::default().expected_files(),
        report.fsck_status,
        report.recovery_error,
        report
            .durations
            .iter()
            .find(|(p, _)| *p == "total")
            .map_or(0.0, |(_, d)| d.as_secs_f64()),
    );
}

fn mapping_mib(o: &Outcome) -> u64 {
    let f = File::open(o.dev.device_path()).unwrap();
    scratchcrypt::blockdev::size_bytes(&f).unwrap() / MIB
}

/// Run one mutation control: everything must still work mechanically, and the verdict must
/// find the defect. Returns the pre-stress findings and the stress report for the caller's
/// specific checks.
fn control(
    label: &str,
    mutation: Mutation,
) -> (Outcome, Vec<String>, StressReport, Option<String>) {
    control_with(label, mutation, &StressConfig::default())
}

/// [`control`] with a stress of the caller's size.
fn control_with(
    label: &str,
    mutation: Mutation,
    config: &StressConfig,
) -> (Outcome, Vec<String>, StressReport, Option<String>) {
    let o = encrypt_on_strict_device(mutation);
    assert!(
        o.plan != o.mutated_plan || o.device_in != o.device_out,
        "{label}: the mutation changed nothing that is zeroed"
    );
    let findings = pre_stress_findings(&o);
    let (report, verdict) = stress_with(&o, config);
    print_summary(label, &o, &report, verdict.is_err());
    for f in &findings {
        eprintln!("{label}: caught before the stress: {f}");
    }
    if let Err(msg) = &verdict {
        eprintln!(
            "{label}: caught by the stress: {}",
            msg.lines().next().unwrap_or("")
        );
    }
    assert!(
        !findings.is_empty() || verdict.is_err(),
        "{label}: the mutation was NOT caught: coverage, fresh e2fsck and the stress were all clean"
    );
    (o, findings, report, verdict.err())
}

/// The real pipeline writes everything the rule names: nothing read while encrypting, every
/// superblock, descriptor, bitmap, inode table and journal block written, a fresh e2fsck with
/// the default read-ahead reads no unwritten block, and the stress (waves, `drop_caches`,
/// crash + journal replay, e2fsck) comes through clean.
#[test]
fn pipeline_on_strict_device_survives_stress() {
    if !privileged::can_run("pipeline_on_strict_device_survives_stress") {
        return;
    }
    let _serial = privileged::serial();
    let o = encrypt_on_strict_device(Mutation::None);
    let findings = pre_stress_findings(&o);
    let (report, verdict) = stress(&o);
    print_summary("pipeline", &o, &report, verdict.is_err());
    assert!(findings.is_empty(), "{}", findings.join("\n"));
    if let Err(msg) = verdict {
        panic!("{msg}");
    }
    assert!(
        o.layout.regions().len() > 8 * 3,
        "layout too small to mean anything"
    );
    let Outcome { dev, .. } = o;
    dev.close().unwrap();
}

/// Control: without the plan range that holds group 0's inode table, the coverage check names
/// the inode table (the stress may or may not hit it: that read is a race).
#[test]
fn pipeline_control_drop_inode_table_range_is_caught() {
    if !privileged::can_run("pipeline_control_drop_inode_table_range_is_caught") {
        return;
    }
    let _serial = privileged::serial();
    let (o, _, _, _) = control("drop-itable-range", Mutation::DropInodeTableRange);
    assert!(
        o.unwritten
            .iter()
            .any(|u| u.what.starts_with("inode table of group 0")),
        "coverage did not name group 0's inode table: {:?}",
        o.unwritten
    );
}

/// Control: without the bitmap blocks (removed from the plan and from the final list, because
/// the read-ahead margin after group 0's bitmaps covers the others), the bitmaps of the
/// `*_UNINIT` groups, holes in the image, stay unwritten, and coverage names them. Nothing else
/// catches this on a 6.x kernel: neither ext4 nor e2fsck reads the bitmap of an UNINIT group.
#[test]
fn pipeline_control_skip_bitmaps_is_caught() {
    if !privileged::can_run("pipeline_control_skip_bitmaps_is_caught") {
        return;
    }
    let _serial = privileged::serial();
    let (o, _, _, _) = control("skip-bitmaps", Mutation::SkipBitmaps);
    assert!(
        o.unwritten.iter().all(|u| u.what.contains("bitmap")) && !o.unwritten.is_empty(),
        "coverage should name bitmaps (and only bitmaps): {:?}",
        o.unwritten
    );
}

/// Control: without read-ahead margins and tail, a fresh e2fsck with the kernel's default
/// read-ahead reads never-written blocks. (Coverage cannot see this: the margins are free
/// space, not metadata.)
#[test]
fn pipeline_control_skip_margins_is_caught() {
    if !privileged::can_run("pipeline_control_skip_margins_is_caught") {
        return;
    }
    let _serial = privileged::serial();
    let (o, _, _, _) = control("skip-margins", Mutation::SkipMargins);
    assert!(
        !o.fresh_fsck_refused.is_empty(),
        "the fresh e2fsck with read-ahead read no unwritten block"
    );
    assert!(o.unwritten.is_empty(), "{:?}", o.unwritten);
}

/// Control: without the journal, coverage names the journal and the mount after the crash
/// reads never-written journal blocks. The replay reads past the log's end only while the
/// log has not yet wrapped: the default stress (8800 files before the crash) writes every
/// block of the 4 MiB journal (`format::JOURNAL_MAX_BYTES`) itself, so this control runs a
/// smaller one (40 files per writer and wave) that leaves the journal's tail unwritten. With
/// 200 it failed 1 run in 7: the earlier waves could fill the log up to the crash batch's end,
/// so the replay's read past the last commit found a block already written.
#[test]
fn pipeline_control_skip_journal_is_caught() {
    if !privileged::can_run("pipeline_control_skip_journal_is_caught") {
        return;
    }
    let _serial = privileged::serial();
    let small = StressConfig {
        files_per_writer: 40,
        ..StressConfig::default()
    };
    let (o, _, report, verdict) = control_with("skip-journal", Mutation::SkipJournal, &small);
    assert!(
        o.unwritten.iter().any(|u| u.what.starts_with("journal")),
        "coverage did not name the journal: {:?}",
        o.unwritten
    );
    assert!(
        report.refused_in("recovery") > 0,
        "the journal replay read no unwritten block: {}",
        verdict.unwrap_or_default()
    );
}

/// The subtraction the controls use.
#[test]
fn subtract_cuts_holes_out_of_ranges() {
    assert_eq!(
        subtract(vec![0..100, 200..300], &[(50, 10), (250, 100), (0, 5)]),
        vec![5..50, 60..100, 200..250]
    );
}
