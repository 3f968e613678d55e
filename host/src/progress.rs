//! A terminal progress bar for one run (hidden with `--quiet` or when stderr is not a
//! terminal), as an [`Observer`] of training.

use indicatif::{ProgressBar, ProgressStyle};

use crate::run::{self, RunRecord};
use crate::train::{EpochMetrics, Observer};

/// A progress bar for one run (hidden when stderr is not a terminal or with --quiet).
pub struct Bar {
    bar: ProgressBar,
    label: String,
}

impl Bar {
    /// A bar labelled `label`, hidden when `quiet`.
    pub fn new(label: String, quiet: bool) -> Self {
        let bar = if quiet {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(0)
        };
        bar.set_style(
            ProgressStyle::with_template("{prefix:>32} [{bar:30}] {pos}/{len} steps {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(label.clone());
        Self { bar, label }
    }
}

impl Observer for Bar {
    fn step(&mut self, _phase: u32, done: u64, total: u64) {
        if done.is_multiple_of(16) || done == total {
            self.bar.set_length(total);
            self.bar.set_position(done);
        }
    }
    fn epoch(&mut self, phase: u32, m: &EpochMetrics) {
        self.bar.set_message(format!(
            "phase {} epoch {} loss {:.3e}",
            phase + 1,
            m.epoch,
            m.train_loss
        ));
    }
}

/// Clears the bar and describes the finished run in one line.
pub fn finish(bar: Bar, record: &RunRecord) -> String {
    bar.bar.finish_and_clear();
    run::describe(&bar.label, record)
}
