//! The progress bar of a run (`curvlab run`, `curvlab sweep run`): an
//! [`Observer`] of the lab's run loop that draws on stderr, and stops the run
//! on Ctrl-C / SIGTERM ([`crate::signals`]).

use curvlab::record::MetricsRow;
use curvlab_lab::run_dir::{Observer, Started};
use indicatif::{ProgressBar, ProgressStyle};

/// A progress bar (hidden when quiet) that also watches for signals.
pub struct Bar {
    bar: ProgressBar,
}

impl Bar {
    /// A bar for a run of `steps` steps (`quiet`: draw nothing); installs
    /// the signal handlers.
    pub fn new(quiet: bool, steps: u64) -> Bar {
        crate::signals::install();
        let bar = if quiet {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(steps)
        };
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} steps  {msg}",
            )
            .expect("valid template"),
        );
        Bar { bar }
    }
}

impl Observer for Bar {
    fn started(&mut self, s: &Started) {
        self.bar.set_length(s.steps);
        self.bar.set_position(s.step);
        self.bar.println(format!(
            "{} parameters; {} train / {} test examples; measuring on {}; {}writing to {}",
            s.params,
            s.train,
            s.test,
            s.measure_n,
            if s.resumed {
                format!("resumed at step {}; ", s.step)
            } else {
                String::new()
            },
            s.out.display()
        ));
    }

    fn step(&mut self, step: u64, loss: f64, lr: f64, last_sharpness: Option<f64>) {
        self.bar.set_position(step);
        if step.is_multiple_of(10) {
            let s = last_sharpness
                .map(|s| format!("{s:.3}"))
                .unwrap_or("-".into());
            self.bar.set_message(format!(
                "loss {loss:.4}  sharpness {s}  2/η {:.3}",
                2.0 / lr
            ));
        }
    }

    fn row(&mut self, row: &MetricsRow) {
        if row.diverged {
            let what = if row.train_loss.is_some_and(f64::is_finite) {
                "a curvature or Jacobian product is not finite"
            } else {
                "loss is not finite"
            };
            self.bar.println(format!(
                "step {}: {what}: the run diverged (recorded in metrics.jsonl)",
                row.step
            ));
        }
    }

    fn notice(&mut self, msg: &str) {
        // Also when quiet: it is about the results, not the progress.
        self.bar.suspend(|| eprintln!("{msg}"));
    }

    fn stopped(&mut self) {
        self.bar.finish_and_clear();
    }

    fn interrupted(&self) -> bool {
        crate::signals::interrupted()
    }
}
