//! The terminal side of progress: a live line on stderr for the long steps of `encrypt`.
//!
//! The library reports progress through a callback ([`scratchcrypt::ProgressFn`]: step, bytes
//! done, bytes in all), so it stays free of any terminal handling. This module turns those calls
//! into a one-line live display, redrawn at most ten times a second, ended when the step is
//! complete, and shown only when stderr is a terminal, so logs and `--json` stay clean.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use scratchcrypt::{ProgressFn, Step};

/// How often the live line is redrawn at most.
const REDRAW_EVERY: Duration = Duration::from_millis(100);

/// The line being drawn.
#[derive(Debug)]
struct Line {
    step: Step,
    started: Instant,
    last_draw: Option<Instant>,
    finished: bool,
}

/// A progress callback that draws on stderr, or `None` when stderr is not a terminal.
pub fn terminal() -> Option<ProgressFn> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let line: Mutex<Option<Line>> = Mutex::new(None);
    Some(Arc::new(move |step, done, total| {
        let Ok(mut guard) = line.lock() else { return };
        let now = Instant::now();
        let current = match guard.as_mut() {
            Some(l) if l.step == step => l,
            _ => guard.insert(Line {
                step,
                started: now,
                last_draw: None,
                finished: false,
            }),
        };
        let last = done >= total;
        let due = current
            .last_draw
            .is_none_or(|t| now.duration_since(t) >= REDRAW_EVERY);
        if current.finished || !(due || last) {
            return;
        }
        current.last_draw = Some(now);
        current.finished = last;
        let secs = current.started.elapsed().as_secs_f64();
        draw(&render(label(step), done, total, secs), last);
    }))
}

/// The word shown for a step.
fn label(step: Step) -> &'static str {
    match step {
        Step::ZeroRanges => "zeroing",
        Step::CopyImage => "copying",
        _ => "working",
    }
}

fn draw(text: &str, last: bool) {
    let mut err = std::io::stderr().lock();
    // A failed write to stderr must not fail the job: progress is cosmetic.
    let _ = write!(err, "\r\x1b[2K{text}");
    if last {
        let _ = writeln!(err);
    }
    let _ = err.flush();
}

/// The text of a progress line: `label  done / total  (percent)  rate`.
pub fn render(label: &str, done: u64, total: u64, secs: f64) -> String {
    let pct = if total == 0 {
        100.0
    } else {
        done as f64 * 100.0 / total as f64
    };
    let rate = if secs > 0.0 { done as f64 / secs } else { 0.0 };
    format!(
        "{label}: {} / {} ({pct:.0}%), {}/s",
        human_bytes(done),
        human_bytes(total),
        human_bytes(rate as u64)
    )
}

/// Bytes in binary units with one decimal: `0 B`, `4.0 KiB`, `1.5 GiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Units switch at 1024 and keep one decimal.
    #[test]
    fn human_bytes_uses_binary_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(4096), "4.0 KiB");
        assert_eq!(human_bytes(3 << 29), "1.5 GiB");
        assert_eq!(human_bytes(16 << 40), "16.0 TiB");
    }

    /// The rendered line carries done, total, percentage and rate.
    #[test]
    fn render_shows_done_total_and_rate() {
        assert_eq!(
            render("copy", 512 << 20, 1 << 30, 2.0),
            "copy: 512.0 MiB / 1.0 GiB (50%), 256.0 MiB/s"
        );
        assert_eq!(render("zero", 0, 0, 0.0), "zero: 0 B / 0 B (100%), 0 B/s");
    }

    /// The long steps have their own words.
    #[test]
    fn steps_have_labels() {
        assert_eq!(label(Step::ZeroRanges), "zeroing");
        assert_eq!(label(Step::CopyImage), "copying");
    }
}
