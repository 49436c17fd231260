//! The `scratchcrypt` command-line tool: a thin face over the library.
//!
//! Every command prints its result on stdout (the mapper path, or one JSON object with `--json`)
//! and a one-line error on stderr on failure, with an exit status from
//! [`scratchcrypt::ErrorClass::exit_code`].

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use scratchcrypt::{
    CleanupOptions, EncryptOptions, Error, FormatOptions, MappingName, MountRequest,
};

mod generate;
mod grower;
mod progress;
mod signals;
mod size;
mod status;

use size::parse_size;

const EXAMPLES: &str = "\
Examples:
  scratchcrypt encrypt /dev/vdb                      # prints /dev/mapper/dm-crypt--dev-vdb
  scratchcrypt encrypt /dev/vdb --name scratch --mount /mnt/scratch --json
  scratchcrypt cleanup scratch --unmount
  scratchcrypt format-image /tmp/test.img --size 4G --json
  scratchcrypt copy-extents /tmp/test.img /dev/loop0";

/// Turn a raw block device into an encrypted, integrity-protected ext4 scratch disk whose key
/// lives only in memory.
#[derive(Debug, Parser)]
#[command(name = "scratchcrypt", version, after_help = EXAMPLES)]
struct Cli {
    /// Print no progress and no notes; errors and the results asked for (stdout) still show.
    #[arg(long, short, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Format DEVICE as LUKS2 + dm-integrity with a random in-memory key, activate it, put ext4
    /// on it and print /dev/mapper/<name>.
    Encrypt(EncryptArgs),
    /// Remove the mapping NAME (the crypt device and the integrity device under it).
    Cleanup(CleanupArgs),
    /// Only build the ext4 image for a device of SIZE in FILE and print what a device would need
    /// zeroed (the formatter's step of `encrypt`, for inspection and testing).
    FormatImage(FormatImageArgs),
    /// Copy the data extents of SRC onto DST at the same offsets, skipping holes (the copy step
    /// of `encrypt` alone; on its own it does NOT make a device safe to read).
    CopyExtents(CopyExtentsArgs),
    /// Show the mapping NAME: its file system size, the size it grows to, whether it is growing;
    /// without NAME, list every scratchcrypt mapping (name, source, size, mount point, growth).
    Status(status::StatusArgs),
    /// Grow a fast-started file system to its full size in the foreground, or wait for the
    /// grower that runs; exits 0 once it has its full size. Idempotent.
    Grow(GrowArgs),
    /// Write the man pages or print a shell completion script (for packaging).
    #[command(hide = true, subcommand)]
    Generate(generate::Generate),
}

#[derive(Debug, Args)]
struct GrowArgs {
    /// The mapping name.
    name: MappingName,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct EncryptArgs {
    /// The block device to encrypt. Its contents are destroyed.
    device: PathBuf,
    /// Mapping name (default: dm-crypt- followed by the device path with non-alphanumerics as -).
    #[arg(long)]
    name: Option<MappingName>,
    /// Seconds to wait for DEVICE to appear (disks attached to a VM can arrive late).
    #[arg(long, value_name = "SECONDS", default_value = "5", value_parser = parse_seconds)]
    wait_timeout: Duration,
    /// Where to create the private temp dir for the image (default: $TMPDIR or /tmp). Its
    /// file system must report holes (tmpfs, ext4, xfs; not ramfs). Without this option, a
    /// default location that cannot hold the image gets a private tmpfs mounted instead.
    #[arg(long, value_name = "DIR")]
    temp_dir: Option<PathBuf>,
    /// Mount the new file system here (mount(2), type ext4).
    #[arg(long, value_name = "DIR")]
    mount: Option<PathBuf>,
    /// Mount options for --mount, as for mount -o (e.g. "noatime,nodev").
    #[arg(long, value_name = "OPTS", requires = "mount")]
    mount_options: Option<String>,
    /// Return as soon as a small file system is mounted, and grow it online to the full size
    /// in a detached process (`scratchcrypt status NAME` shows the progress). Needs --mount.
    #[arg(long, requires = "mount")]
    fast_start: bool,
    /// With --fast-start: the size of the file system at first (rounded down to whole
    /// 128 MiB block groups).
    #[arg(long, value_name = "SIZE", default_value = "512M", value_parser = parse_size_arg, requires = "fast_start")]
    initial_size: u64,
    /// With --fast-start: size the journal for the full disk (as a full format would, up to
    /// 1 GiB) instead of the initial one; all of it is written before the mount.
    #[arg(long, requires = "fast_start")]
    full_journal: bool,
    /// With --fast-start: where the file system cannot grow online (the process lacks
    /// CAP_SYS_RESOURCE, as in many containers), format the full size instead. Without it such
    /// a fast start is refused (exit 8) before anything is written.
    #[arg(long, requires = "fast_start")]
    or_full_format: bool,
    #[command(flatten)]
    format: FormatArgs,
    /// Write over DEVICE even if it holds a file system, a partition table, a RAID or LVM
    /// member, swap or someone else's LUKS volume (a previous scratchcrypt disk is re-made
    /// without it).
    #[arg(long)]
    force: bool,
    /// Print one JSON report instead of the mapper path.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct FormatArgs {
    /// Bytes of file system per inode (default: as mke2fs chooses for the size).
    #[arg(long, value_name = "BYTES")]
    inode_ratio: Option<u32>,
    /// Create no journal (faster, but the fs is not crash-safe).
    #[arg(long)]
    no_journal: bool,
    /// Percentage of blocks reserved for root.
    #[arg(long, value_name = "PERCENT", default_value_t = 5.0)]
    reserved_percent: f64,
    /// File-system label (at most 16 bytes).
    #[arg(long)]
    label: Option<String>,
}

#[derive(Debug, Args)]
struct CleanupArgs {
    /// The mapping name given to (or printed by) `encrypt`.
    name: MappingName,
    /// Unmount the mapping first if it is mounted (lazily unmounted mounts are not waited for).
    #[arg(long)]
    unmount: bool,
    /// Where killed runs may have left temp dirs (default: $TMPDIR or /tmp); those whose
    /// process is gone are removed.
    #[arg(long, value_name = "DIR")]
    temp_dir: Option<PathBuf>,
    /// Remove any cryptsetup mapping of that name, not only a LUKS2 crypt-over-integrity
    /// stack (a plain dm-crypt or LUKS volume loses its data with its key).
    #[arg(long)]
    force: bool,
    /// Print one JSON object instead of a note.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct FormatImageArgs {
    /// The image file to create (sparse; truncated if it exists).
    file: PathBuf,
    /// Size of the device the image is for: bytes, or with a K/M/G/T/P suffix (binary).
    #[arg(long, value_parser = parse_size_arg)]
    size: u64,
    #[command(flatten)]
    format: FormatArgs,
    /// Print the plan as JSON (ranges to zero, image data bytes, time taken).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct CopyExtentsArgs {
    /// The sparse source file.
    src: PathBuf,
    /// The destination file or block device.
    dst: PathBuf,
    /// Print the copy statistics as JSON.
    #[arg(long)]
    json: bool,
}

fn parse_seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(0.0..=86_400.0).contains(&secs) {
        return Err(format!("{s} is outside 0 to 86400 seconds"));
    }
    Duration::try_from_secs_f64(secs).map_err(|e| e.to_string())
}

fn parse_size_arg(s: &str) -> Result<u64, String> {
    parse_size(s).map_err(|e| e.to_string())
}

impl FormatArgs {
    fn to_options(&self) -> FormatOptions {
        FormatOptions {
            inode_ratio: self.inode_ratio,
            journal: !self.no_journal,
            reserved_percent: self.reserved_percent,
            label: self.label.clone(),
            ..FormatOptions::default()
        }
    }
}

fn main() -> ExitCode {
    if let Err(e) = keep_out_of_core_files() {
        eprintln!("scratchcrypt: make this process non-dumpable: {e}");
        return ExitCode::from(1);
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("scratchcrypt: {}", e.line());
            let code = match e.interrupted_by() {
                Some(signal) => 128 + signal,
                None => e.class().exit_code(),
            };
            let code = u8::try_from(code).unwrap_or(1);
            ExitCode::from(code)
        }
    }
}

/// Before anything else: no core file of this process, or of the grower it forks (both
/// settings are inherited across fork), can be written, so no copy of the volume key (ours,
/// libcryptsetup's, the table buffers') reaches a file by a crash or a SIGQUIT. Non-dumpable
/// also keeps other users' ptrace and /proc/PID/mem out.
fn keep_out_of_core_files() -> std::io::Result<()> {
    // SAFETY: PR_SET_DUMPABLE takes a plain integer and changes only this process's attribute.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_CORE, 0, 0)
        .map_err(std::io::Error::from)
}

/// Help and version go to stdout as clap renders them; a usage error becomes one line on
/// stderr (`scratchcrypt: ...`) with exit status 2, like every other error of this tool.
fn usage_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion)
        || matches!(
            e.kind(),
            ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
        )
    {
        let _ = e.print();
        return if e.use_stderr() {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        };
    }
    let text = e.render().to_string();
    let line = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("invalid arguments")
        .trim_start_matches("error: ");
    eprintln!("scratchcrypt: {line} (see --help)");
    ExitCode::from(2)
}

fn print_json<T: serde::Serialize>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("scratchcrypt: cannot render the JSON report: {e}"),
    }
}

fn run(cli: Cli) -> Result<(), Error> {
    let quiet = cli.quiet;
    match cli.command {
        Command::Encrypt(a) => {
            let name = a.name.unwrap_or_else(|| MappingName::for_source(&a.device));
            let options = EncryptOptions {
                wait_timeout: a.wait_timeout,
                tmpfs_fallback: a.temp_dir.is_none(),
                temp_dir: a.temp_dir,
                format: FormatOptions {
                    initial_bytes: a.fast_start.then_some(a.initial_size),
                    full_journal: a.full_journal,
                    ..a.format.to_options()
                },
                progress: if a.json || quiet {
                    None
                } else {
                    progress::terminal()
                },
                mount: a.mount.map(|dir| MountRequest {
                    dir,
                    options: a.mount_options,
                }),
                cancel: signals::install(),
                force: a.force,
                full_format_if_no_growth: a.or_full_format,
            };
            let report = scratchcrypt::encrypt(&a.device, &name, &options)?;
            if report.fs_bytes < report.target_bytes {
                if let Err(e) = grower::spawn(&name) {
                    // Past the run's last safe point, but nothing is printed yet: a disk that
                    // cannot grow is not handed over. Undo it as `cleanup --unmount` would
                    // (which removes only our own stack), so that a failed exit leaves nothing
                    // mounted for a unit whose ExecStop never runs.
                    let undo = scratchcrypt::cleanup(
                        &name,
                        &CleanupOptions {
                            unmount: true,
                            ..CleanupOptions::default()
                        },
                    );
                    return Err(match undo {
                        Ok(_) => e,
                        Err(u) => Error::Rollback {
                            cause: Box::new(e),
                            rollback: vec![u],
                        },
                    });
                }
            }
            if a.json {
                print_json(&report);
            } else {
                println!("{}", report.mapper_path.display());
            }
        }
        Command::Cleanup(a) => {
            let outcome = scratchcrypt::cleanup(
                &a.name,
                &CleanupOptions {
                    unmount: a.unmount,
                    temp_dir: a.temp_dir,
                    force: a.force,
                },
            )
            .inspect_err(|_| {
                // A cleanup that failed after it stopped the grower (a busy unmount) leaves the
                // mapping and its growth record: start the grower again, so the file system
                // does not stay small for good. A grower that still runs holds the lock, and
                // then this does nothing.
                if let Ok(Some(_)) = scratchcrypt::GrowState::load(&a.name) {
                    if a.name.mapper_path().exists() {
                        let _ = grower::spawn(&a.name);
                    }
                }
            })?;
            if a.json {
                print_json(&outcome);
            } else if !outcome.existed && !quiet {
                eprintln!(
                    "scratchcrypt: no mapping named {} (nothing to remove)",
                    a.name
                );
            }
        }
        Command::FormatImage(a) => {
            let plan = scratchcrypt::build_image(&a.file, a.size, &a.format.to_options())?;
            if a.json {
                print_json(&plan);
            } else {
                println!(
                    "{}: {} of image data, {} to zero in {} ranges",
                    a.file.display(),
                    progress::human_bytes(plan.image_data_bytes),
                    progress::human_bytes(plan.zero_bytes),
                    plan.zero_ranges.len()
                );
            }
        }
        Command::Status(a) => status::run(a)?,
        Command::Generate(g) => generate::run(g)?,
        Command::Grow(a) => {
            let options = scratchcrypt::GrowOptions::with_progress(if a.json || quiet {
                None
            } else {
                progress::terminal()
            });
            let report = scratchcrypt::grow(&a.name, &options)?;
            if a.json {
                print_json(&report);
            }
        }
        Command::CopyExtents(a) => {
            let stats = scratchcrypt::copy_file_extents(&a.src, &a.dst)?;
            if a.json {
                print_json(&stats);
            }
        }
    }
    Ok(())
}
