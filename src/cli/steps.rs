//! How a training loop shows itself: a progress bar on a terminal, and where stderr is a log (CI, `nohup`,
//! a pipe) a plain line every few steps, so a long run is never silent.
use crate::train::log::StepRecord;
use std::io::IsTerminal;

pub(crate) struct StepView {
    bar: indicatif::ProgressBar,
    /// Print a line every this many steps (0: the bar shows progress).
    every: u64,
    label: String,
    batch: usize,
}

impl StepView {
    pub fn new(label: &str, total: u64, start: u64, batch: usize, json: bool) -> Self {
        let terminal = std::io::stderr().is_terminal();
        let bar = if json || !terminal { indicatif::ProgressBar::hidden() } else { indicatif::ProgressBar::new(total) };
        bar.set_style(
            indicatif::ProgressStyle::with_template("{prefix} [{bar:25}] {pos}/{len} {elapsed}<{eta} {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(label.to_string());
        bar.set_position(start);
        // About twenty lines a run, at most one every 10 steps and at least one every 500.
        let every = if terminal { 0 } else { (total / 20).clamp(10, 500) };
        StepView { bar, every, label: label.to_string(), batch }
    }

    pub fn show(&self, r: &StepRecord, total: u64) {
        let secs = r.data_s + r.rpn_s + r.step_s;
        let terms: Vec<String> = r.terms.iter().map(|(k, v)| format!("{}={v:.3}", k.trim_start_matches("loss_"))).collect();
        // A classifier's loss has no terms.
        let terms = if terms.is_empty() { String::new() } else { format!(" ({})", terms.join(" ")) };
        let msg = format!("loss {:.3}{terms} lr {:.2e} {:.1} img/s", r.loss, r.lr, self.batch as f64 / secs.max(1e-9));
        if self.every > 0 && (r.step % self.every == 0 || r.step == total) {
            eprintln!("{} step {}/{}: {msg}", self.label, r.step, total);
        }
        self.bar.set_message(msg);
        self.bar.set_position(r.step);
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
