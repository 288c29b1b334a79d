//! How work shows itself on the terminal: a progress bar for the library's [`Progress`] events, and a training
//! loop's view — a bar on a terminal, and where stderr is a log (CI, `nohup`, a pipe) a plain line every few
//! steps, so a long run is never silent.
use crate::progress::Progress;
use crate::train::StepRecord;
use std::io::IsTerminal;

/// A progress bar on stderr, hidden for `--json` runs and when stderr is not a terminal.
pub(crate) fn progress(len: u64, msg: &str, json: bool) -> indicatif::ProgressBar {
    if json {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg:>12} [{bar:30}] {pos}/{len} {elapsed}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(msg.to_string());
    bar
}

/// A new bar (see [`progress`]) that the returned callback drives with the library's events; it goes when the
/// work is `Done`.
pub(crate) fn progress_bar(len: u64, msg: &str, json: bool) -> impl FnMut(Progress) {
    let bar = progress(len, msg, json);
    move |p| show_progress(&bar, p)
}

fn show_progress(bar: &indicatif::ProgressBar, p: Progress) {
    match p {
        Progress::Total(n) => bar.set_length(n),
        Progress::Phase(what) => bar.set_message(what.to_string()),
        Progress::Step => bar.inc(1),
        Progress::Done => bar.finish_and_clear(),
    }
}

/// A training loop's view from `start` to `total` steps of `batch` images: call it with each step's record, and
/// with `None` once the loop ends.
pub(crate) fn progress_steps(label: &str, total: u64, start: u64, batch: usize, json: bool) -> impl Fn(Option<&StepRecord>) {
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
    let label = label.to_string();
    move |r: Option<&StepRecord>| match r {
        Some(r) => show_step(&bar, r, total, every, &label, batch),
        None => bar.finish_and_clear(),
    }
}

/// One step on the bar, and a line on stderr every `every` steps (0: the bar alone).
fn show_step(bar: &indicatif::ProgressBar, r: &StepRecord, total: u64, every: u64, label: &str, batch: usize) {
    let secs = r.data_s + r.rpn_s + r.step_s;
    let terms: Vec<String> = r.terms.iter().map(|(k, v)| format!("{}={v:.3}", k.trim_start_matches("loss_"))).collect();
    // A classifier's loss has no terms.
    let terms = if terms.is_empty() { String::new() } else { format!(" ({})", terms.join(" ")) };
    let msg = format!("loss {:.3}{terms} lr {:.2e} {:.1} img/s", r.loss, r.lr, batch as f64 / secs.max(1e-9));
    if every > 0 && (r.step.is_multiple_of(every) || r.step == total) {
        crate::fsio::stderr_line(format_args!("{label} step {}/{}: {msg}", r.step, total));
    }
    bar.set_message(msg);
    bar.set_position(r.step);
}
