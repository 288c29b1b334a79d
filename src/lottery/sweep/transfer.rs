//! The paper's transfer study (§4.2, App. A) and late resetting with a pretrained backbone. Its detector runs are
//! a sweep like every study's, but they start from files a preparation makes first, per seed, in DIR/prep/seed_S
//! (each step skipped when its output exists, resumed when it was cut short): the classifier pretrained
//! (`ticket train --classify`), its ticket (`ticket imp` on the classifier), and the three detectors
//! `lottery::transfer` builds — the pretrained body, the transfer ticket, the mask transfer. Training and IMP run
//! as the `ticket` binary `exe` (each a resumable run folder, its output appended to DIR/prep/seed_S/log.txt),
//! as a sweep's tasks do. The sweep then lists its tasks as cells (they vary model and mask together).
use super::study::{toml_str, StudyInputs};
use super::task::tail;
use crate::error::{Context, Error, Result, WriteContext};
use crate::runtime::child::status_tied;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Classifier pretraining steps (batch 32, AdamW, lr 0.001).
pub const DEFAULT_CLS_STEPS: u64 = 1500;
/// Fine-tuning steps of the classifier ticket.
pub const DEFAULT_CLS_TICKET_STEPS: u64 = 300;
/// The classifier's batch.
pub const DEFAULT_CLS_BATCH: usize = 32;

/// What the transfer study needs beyond every study's inputs.
#[derive(Clone, Debug)]
pub struct TransferInputs {
    /// The ResNet classifier to pretrain (same blocks and widths as the detector's body).
    pub classifier: Option<PathBuf>,
    /// Its training set.
    pub classify: Option<PathBuf>,
    /// Its held-out set, for the classifier ticket's top-1.
    pub val_classify: Option<PathBuf>,
    pub cls_steps: u64,
    pub cls_ticket_steps: u64,
    pub cls_batch: usize,
    /// Estimate the detectors' body norms on the classifier's training crops at transfer (see
    /// `lottery::transfer`).
    pub norm_stats: bool,
}

impl Default for TransferInputs {
    fn default() -> Self {
        TransferInputs {
            classifier: None,
            classify: None,
            val_classify: None,
            cls_steps: DEFAULT_CLS_STEPS,
            cls_ticket_steps: DEFAULT_CLS_TICKET_STEPS,
            cls_batch: DEFAULT_CLS_BATCH,
            norm_stats: false,
        }
    }
}

/// imp's exit code when no level is within its gate: a finished run all the same.
const IMP_NO_TICKET: Option<i32> = Some(1);

/// One seed's prepared detectors.
struct Prepared {
    seed: u64,
    pretrained: PathBuf,
    tt: (PathBuf, PathBuf),
    mt: (PathBuf, PathBuf),
}

/// The classifier, its sets, and where one seed's preparation goes.
struct Seed<'a> {
    t: &'a TransferInputs,
    cls: &'a Path,
    data: &'a Path,
    val: &'a Path,
    seed: u64,
    threads: Option<&'a str>,
    dir: PathBuf,
    log: PathBuf,
}

/// A file the preparation needs: `what` names its setting in backticks.
fn need<'a>(v: &'a Option<PathBuf>, setting: &'static str, what: &str) -> Result<&'a PathBuf> {
    v.as_ref().ok_or_else(|| Error::setting(setting, format!("study transfer needs {what}")))
}

fn os(s: &str) -> OsString {
    OsString::from(s)
}

/// Appends `line` to the preparation's log.
fn log_line(log: &Path, line: &str) -> Result<std::fs::File> {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(log).writing(log)?;
    writeln!(f, "{line}").writing(log)?;
    Ok(f)
}

/// Runs one preparation step, its output appended to LOG; exit codes other than 0 and `also_ok` fail, naming the
/// step and quoting the log's end.
fn step(exe: &Path, args: &[OsString], log: &Path, what: &str, also_ok: Option<i32>) -> Result<()> {
    let f = log_line(log, &format!("# {what}"))?;
    let mut cmd = Command::new(exe);
    cmd.args(args).stdin(Stdio::null()).stdout(f.try_clone().at(log)?).stderr(f);
    let status = status_tied(cmd).map_err(|e| Error::Runtime(format!("{}: {e}", exe.display())))?;
    if status.success() || (also_ok.is_some() && status.code() == also_ok) {
        return Ok(());
    }
    let msg = format!("study transfer: {what} failed ({status}); {} ends: {}", log.display(), tail(log, 3).join(" | "));
    // The step's own verdict on its input (exit 2) is the study's: the user's files are wrong, not the machine.
    Err(if status.code() == Some(2) { Error::Input(msg) } else { Error::Runtime(msg) })
}

impl Seed<'_> {
    /// The classifier's schedule flags and the seed's common ones.
    fn schedule(&self, steps: u64) -> Vec<OsString> {
        let mut v = vec![os("--steps"), os(&steps.to_string()), os("--batch"), os(&self.t.cls_batch.to_string())];
        v.extend([os("--optimizer"), os("adamw"), os("--lr"), os("0.001"), os("--warmup"), os(&(steps / 30).max(1).to_string())]);
        v.extend([os("--seed"), os(&self.seed.to_string())]);
        if let Some(n) = self.threads {
            v.extend([os("--threads"), os(n)]);
        }
        v
    }

    /// The classifier pretrained in DIR/cls_pretrain (resumed when its run folder is there).
    fn pretrain(&self, exe: &Path) -> Result<PathBuf> {
        let pre = self.dir.join("cls_pretrain");
        if !pre.join("model.onnx").exists() {
            let mut args: Vec<OsString> = vec![os("train"), self.cls.into()];
            if pre.join("run.json").exists() {
                args.extend([os("--resume"), pre.clone().into()]);
            } else {
                args.extend([os("--classify"), self.data.into()]);
                args.extend(self.schedule(self.t.cls_steps));
                args.extend([os("-o"), pre.clone().into()]);
            }
            step(exe, &args, &self.log, "classifier pretraining", None)?;
        }
        Ok(pre.join("model.onnx"))
    }

    /// The classifier's ticket in DIR/cls_ticket (one level at 80%, fine-tuned from the pretrained weights).
    fn ticket(&self, exe: &Path, pretrained: &Path) -> Result<PathBuf> {
        let ticket = self.dir.join("cls_ticket");
        if !ticket.join(crate::lottery::imp::SUMMARY).exists() {
            let mut args: Vec<OsString> = vec![os("imp")];
            if ticket.join("run.json").exists() {
                args.extend([os("--resume"), ticket.clone().into()]);
            } else {
                args.extend([self.cls.into(), os("--trained"), pretrained.into(), os("--classify"), self.data.into()]);
                args.extend([os("--val-classify"), self.val.into()]);
                args.extend([os("--sparsity"), os("0.8"), os("--rewind"), os("none"), os("--max-map-drop"), os("1")]);
                args.extend(self.schedule(self.t.cls_ticket_steps));
                args.extend([os("-o"), ticket.clone().into()]);
            }
            step(exe, &args, &self.log, "classifier ticket (imp)", IMP_NO_TICKET)?;
        }
        Ok(ticket.join("level_1"))
    }

    /// The three detectors, each built unless it exists.
    fn detectors(&self, detector: &Path, pretrained: &Path, level: &Path) -> Result<Prepared> {
        let d = &self.dir;
        let p = Prepared {
            seed: self.seed,
            pretrained: d.join("det_pretrained.onnx"),
            tt: (d.join("det_tt.onnx"), d.join("det_tt.safetensors")),
            mt: (d.join("det_mt.onnx"), d.join("det_mt.safetensors")),
        };
        let (cls_model, cls_masks) = (level.join("model.onnx"), level.join("masks.safetensors"));
        let builds: [(&Path, &Path, Option<&Path>, &str); 3] = [
            (pretrained, &p.pretrained, None, "transfer: pretrained backbone"),
            (&cls_model, &p.tt.0, Some(&p.tt.1), "transfer: transfer ticket"),
            (pretrained, &p.mt.0, Some(&p.mt.1), "transfer: mask transfer"),
        ];
        for (from, to, masks_out, what) in builds {
            if to.exists() {
                continue;
            }
            log_line(&self.log, &format!("# {what}"))?;
            let masks = masks_out.map(|_| cls_masks.as_path());
            let norms = self.t.norm_stats.then(|| crate::lottery::transfer::NormSettings {
                data: self.data.to_path_buf(),
                images: crate::lottery::transfer::DEFAULT_NORM_IMAGES,
            });
            let r = crate::lottery::transfer::transfer_files(from, detector, masks, to, masks_out, norms.as_ref())?;
            log_line(&self.log, &serde_json::to_string(&r).expect("serialises"))?;
        }
        Ok(p)
    }
}

/// Pretrains the classifier, finds its ticket and builds the three detectors, for every seed.
fn prepare(t: &TransferInputs, detector: &Path, seeds: &[u64], threads: Option<&str>, dir: &Path, exe: &Path) -> Result<Vec<Prepared>> {
    let (cls, data, val) = (
        need(&t.classifier, "classifier", "`classifier` CLS.onnx")?,
        need(&t.classify, "classify", "`classify` DIR")?,
        need(&t.val_classify, "val_classify", "`val_classify` DIR")?,
    );
    let mut out = Vec::new();
    for &seed in seeds {
        let d = dir.join("prep").join(format!("seed_{seed}"));
        std::fs::create_dir_all(&d).writing(&d)?;
        let s = Seed { t, cls, data, val, seed, threads, log: d.join("log.txt"), dir: d };
        let pretrained = s.pretrain(exe)?;
        let level = s.ticket(exe, &pretrained)?;
        out.push(s.detectors(detector, &pretrained, &level)?);
    }
    Ok(out)
}

/// The late-resetting step: 5% of dense training (the paper's), or the end of the learning-rate warm-up where
/// that is later. A rewind point inside the warm-up holds weights the schedule has barely moved (at 600 steps
/// with the default warm-up of 100, 5% is step 30), which is no late reset at all.
pub fn late_reset_step(steps: u64, warmup: u64) -> u64 {
    (steps * 5 / 100).max(warmup).max(1)
}

/// The study's spec: per seed, direct pruning of the backbone (rewound to the pretrained weights), late
/// resetting (to 5% of dense training, or the end of the warm-up where that is later), the transfer ticket and
/// the mask transfer.
fn spec(prep: &[Prepared], fixed: &[(String, String)], steps: u64, sparsity: f64) -> String {
    let path = |p: &Path| toml_str(&p.to_string_lossy());
    let mut s = String::from("# ticket study transfer: tickets from a classifier pretrained here against direct pruning and late resetting\nname = \"transfer\"\n\n[fixed]\n");
    writeln!(s, "steps = {steps}").unwrap();
    for (k, v) in fixed {
        writeln!(s, "{k} = {v}").unwrap();
    }
    if !fixed.iter().any(|(k, _)| k == "lr") {
        s += "# At 0.01 a detector on a body pretrained here diverges (docs/RESULTS.md, (d) and (f)).\nlr = 0.003\n";
    }
    let warmup = fixed.iter().find(|(k, _)| k == "warmup").and_then(|(_, v)| v.parse().ok());
    let late = late_reset_step(steps, warmup.unwrap_or(crate::train::TrainSettings::default().warmup));
    for p in prep {
        for rewind in ["init".to_string(), late.to_string()] {
            write!(
                s,
                "\n[[cells]]\nmodel = {}\nseed = {}\nsparsity = {sparsity}\nmodules = [\"base\"]\nrewind = {}\n",
                path(&p.pretrained),
                p.seed,
                toml_str(&rewind)
            )
            .unwrap();
        }
        for (model, masks) in [&p.tt, &p.mt] {
            write!(s, "\n[[cells]]\nmodel = {}\nseed = {}\nmasks-from = {}\nrewind = \"init\"\n", path(model), p.seed, path(masks))
                .unwrap();
        }
    }
    s
}

/// Prepares the seeds' detectors under `dir` (training and IMP run as the `ticket` binary `exe`) and returns
/// the study's spec; `inputs.models` is the one detector.
pub fn transfer_study(t: &TransferInputs, inputs: &StudyInputs, dir: &Path, exe: &Path) -> Result<String> {
    let [detector] = inputs.models.as_slice() else {
        return Err(Error::Input(format!("study transfer takes one MODEL, the detector ({} given)", inputs.models.len())));
    };
    if inputs.seeds.is_empty() {
        return Err(Error::setting("seeds", "`seeds` is empty: give at least one seed"));
    }
    let threads = inputs.fixed.iter().find(|(k, _)| k == "threads").map(|(_, v)| v.as_str());
    let detector = std::path::absolute(detector).at(detector)?;
    let prep = prepare(t, &detector, &inputs.seeds, threads, dir, exe)?;
    Ok(spec(&prep, &inputs.fixed, inputs.steps, inputs.sparsity))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prepared() -> Vec<Prepared> {
        let p = |s: &str| PathBuf::from(s);
        vec![Prepared { seed: 1, pretrained: p("pre.onnx"), tt: (p("tt.onnx"), p("tt.st")), mt: (p("mt.onnx"), p("mt.st")) }]
    }

    /// The late reset lies at or after the end of the warm-up: the default one (100 steps), or the study's own.
    #[test]
    fn late_reset_lies_after_the_warmup() {
        assert_eq!(late_reset_step(600, 100), 100);
        assert_eq!(late_reset_step(600, 20), 30);
        assert_eq!(late_reset_step(4000, 100), 200);
        assert!(spec(&prepared(), &[], 600, 0.8).contains("rewind = \"100\""));
        assert!(spec(&prepared(), &[("warmup".into(), "40".into())], 600, 0.8).contains("rewind = \"40\""));
        assert!(spec(&prepared(), &[("warmup".into(), "10".into())], 600, 0.8).contains("rewind = \"30\""));
    }
}
