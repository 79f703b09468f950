//! Progress of long syncs: a bar on stderr when it is a terminal, `tracing`
//! events otherwise (start, every tenth, end), nothing when silent.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicUsize, Ordering};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Below this many steps a phase shows no bar (it would only flicker).
const BAR_THRESHOLD: usize = 50;

/// How progress is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Not at all.
    Silent,
    /// As `tracing` events.
    Log,
    /// As a bar on stderr.
    Bar,
}

impl Progress {
    /// A bar when stderr is a terminal, log events otherwise.
    pub fn for_terminal() -> Progress {
        if std::io::stderr().is_terminal() {
            Progress::Bar
        } else {
            Progress::Log
        }
    }

    /// Starts tracking a phase of `total` steps.
    pub fn start(self, what: &str, total: usize) -> Tracker {
        let bar = (self == Progress::Bar && total >= BAR_THRESHOLD).then(|| {
            let b = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
            if let Ok(style) =
                ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} {per_sec} eta {eta}")
            {
                b.set_style(style.progress_chars("=> "));
            }
            b.set_message(what.to_string());
            b
        });
        if self == Progress::Log && total > 0 {
            tracing::info!(phase = what, total, "starting");
        }
        Tracker {
            bar,
            log: self == Progress::Log,
            what: what.to_string(),
            total,
            done: AtomicUsize::new(0),
        }
    }
}

/// One phase being tracked.
pub struct Tracker {
    bar: Option<ProgressBar>,
    log: bool,
    what: String,
    total: usize,
    done: AtomicUsize,
}

impl Tracker {
    /// One more step done.
    pub fn inc(&self) {
        let n = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(b) = &self.bar {
            b.inc(1);
        } else if self.log && self.total >= 1000 && n.is_multiple_of(self.total / 10) {
            tracing::info!(phase = %self.what, done = n, total = self.total, "progress");
        }
    }

    /// The phase is over.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
        if self.log && self.total > 0 {
            tracing::info!(phase = %self.what, done = self.done.load(Ordering::Relaxed), "done");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trackers_count_steps_in_every_mode() {
        for mode in [Progress::Silent, Progress::Log, Progress::Bar] {
            let t = mode.start("apply", 2000);
            for _ in 0..2000 {
                t.inc();
            }
            t.finish();
            assert_eq!(t.done.load(Ordering::Relaxed), 2000);
        }
    }
}
