//! Progress reporting for the long steps (zeroing and copying).
//!
//! The library reports progress through a plain callback (`&mut dyn FnMut(u64)` receiving the
//! bytes done since the last call), so it stays free of any terminal handling. This module holds
//! the terminal side: a one-line live display on stderr, redrawn at most ten times a second, and
//! shown only when stderr is a terminal, so logs and `--json` output stay clean.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// How often the live line is redrawn at most.
const REDRAW_EVERY: Duration = Duration::from_millis(100);

/// A live progress line for one step.
#[derive(Debug)]
pub struct Progress {
    label: &'static str,
    total: u64,
    done: u64,
    started: Instant,
    last_draw: Option<Instant>,
    enabled: bool,
}

impl Progress {
    /// A progress line for `label` over `total` bytes, drawn only if `enabled` and stderr is a
    /// terminal.
    pub fn new(label: &'static str, total: u64, enabled: bool) -> Progress {
        Progress {
            label,
            total,
            done: 0,
            started: Instant::now(),
            last_draw: None,
            enabled: enabled && std::io::stderr().is_terminal(),
        }
    }

    /// Account for `bytes` more done, redrawing when due.
    pub fn advance(&mut self, bytes: u64) {
        self.done = self.done.saturating_add(bytes);
        if !self.enabled {
            return;
        }
        let now = Instant::now();
        if self
            .last_draw
            .is_none_or(|t| now.duration_since(t) >= REDRAW_EVERY)
        {
            self.last_draw = Some(now);
            self.draw(false);
        }
    }

    /// Bytes done so far.
    pub fn done(&self) -> u64 {
        self.done
    }

    /// Draw the final state and end the line.
    pub fn finish(mut self) {
        if self.enabled {
            self.draw(true);
        }
        self.enabled = false;
    }

    fn draw(&self, last: bool) {
        let secs = self.started.elapsed().as_secs_f64();
        let line = render(self.label, self.done, self.total, secs);
        let mut err = std::io::stderr().lock();
        // A failed write to stderr must not fail the job: progress is cosmetic.
        let _ = write!(err, "\r\x1b[2K{line}");
        if last {
            let _ = writeln!(err);
        }
        let _ = err.flush();
    }
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

    /// A disabled progress line still counts, so reports can use it.
    #[test]
    fn disabled_progress_still_counts() {
        let mut p = Progress::new("copy", 100, false);
        p.advance(40);
        p.advance(60);
        assert_eq!(p.done(), 100);
        p.finish();
    }
}
