//! `ticket study transfer`: the paper's transfer study (§4.2, App. A) and late resetting with a pretrained
//! backbone, as one command. Its detector runs are a sweep like every study's, but they start from files a
//! preparation makes first, per seed, in DIR/prep/seed_S (each step skipped when its output exists, resumed when
//! it was cut short): the classifier pretrained (`ticket train --classify`), its ticket (`ticket imp` on the
//! classifier), and the three detectors `ticket transfer` builds — the pretrained body, the transfer ticket, the
//! mask transfer. The sweep then lists its tasks as cells (they vary model and mask together).
use crate::error::{Error, Result};
use crate::lottery::sweep::study::toml_str;
use crate::lottery::sweep::task::tail;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What the transfer study needs beyond every study's inputs.
#[derive(clap::Args, Debug)]
pub struct TransferArgs {
    /// transfer: the ResNet classifier to pretrain (same blocks and widths as the detector's body;
    /// tools/export_models.py --synth W writes one).
    #[arg(long)]
    pub classifier: Option<PathBuf>,
    /// transfer: its training set (`ticket data synth --classify`).
    #[arg(long)]
    pub classify: Option<PathBuf>,
    /// transfer: its held-out set, for the classifier ticket's top-1.
    #[arg(long)]
    pub val_classify: Option<PathBuf>,
    /// transfer: classifier pretraining steps (batch 32, AdamW, lr 0.001).
    #[arg(long, default_value_t = 1500)]
    pub cls_steps: u64,
    /// transfer: fine-tuning steps of the classifier ticket.
    #[arg(long, default_value_t = 300)]
    pub cls_ticket_steps: u64,
    /// transfer: the classifier's batch.
    #[arg(long, default_value_t = 32)]
    pub cls_batch: usize,
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

fn need<'a>(v: &'a Option<PathBuf>, flag: &str) -> Result<&'a PathBuf> {
    v.as_ref().ok_or_else(|| Error::Input(format!("study transfer needs {flag}")))
}

/// Runs one preparation step, its output appended to LOG; exit codes other than 0 and `also_ok` fail, naming the
/// step and quoting the log's end.
fn step(exe: &Path, args: &[&std::ffi::OsStr], log: &Path, what: &str, also_ok: Option<i32>) -> Result<()> {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(log).map_err(|e| Error::io(log, e))?;
    writeln!(f, "# {what}").map_err(|e| Error::io(log, e))?;
    let status = Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .stdout(f.try_clone().map_err(|e| Error::io(log, e))?)
        .stderr(f)
        .status()
        .map_err(|e| Error::Runtime(format!("{}: {e}", exe.display())))?;
    if status.success() || (also_ok.is_some() && status.code() == also_ok) {
        return Ok(());
    }
    let msg = format!("study transfer: {what} failed ({status}); {} ends: {}", log.display(), tail(log, 3).join(" | "));
    // The step's own verdict on its input (exit 2) is the study's: the user's files are wrong, not the machine.
    Err(if status.code() == Some(2) { Error::Input(msg) } else { Error::Runtime(msg) })
}

/// Pretrains the classifier, finds its ticket and builds the three detectors, for every seed.
fn prepare(t: &TransferArgs, detector: &Path, seeds: &[u64], threads: Option<&str>, dir: &Path, exe: &Path) -> Result<Vec<Prepared>> {
    let (cls, data, val) =
        (need(&t.classifier, "--classifier CLS.onnx")?, need(&t.classify, "--classify DIR")?, need(&t.val_classify, "--val-classify DIR")?);
    let mut out = Vec::new();
    for &seed in seeds {
        let d = dir.join("prep").join(format!("seed_{seed}"));
        std::fs::create_dir_all(&d).map_err(|e| Error::io(&d, e))?;
        let log = d.join("log.txt");
        let os = |s: &str| std::ffi::OsString::from(s);
        let mut common = vec![os("--seed"), os(&seed.to_string())];
        if let Some(n) = threads {
            common.extend([os("--threads"), os(n)]);
        }
        let (pre, ticket) = (d.join("cls_pretrain"), d.join("cls_ticket"));
        let schedule = |steps: u64| {
            vec![
                os("--steps"),
                os(&steps.to_string()),
                os("--batch"),
                os(&t.cls_batch.to_string()),
                os("--optimizer"),
                os("adamw"),
                os("--lr"),
                os("0.001"),
                os("--warmup"),
                os(&(steps / 30).max(1).to_string()),
            ]
        };
        if !pre.join("model.onnx").exists() {
            let mut args: Vec<std::ffi::OsString> = vec![os("train"), cls.into()];
            if pre.join("run.json").exists() {
                args.extend([os("--resume"), pre.clone().into()]);
            } else {
                args.extend([os("--classify"), data.into()]);
                args.extend(schedule(t.cls_steps));
                args.extend(common.clone());
                args.extend([os("-o"), pre.clone().into()]);
            }
            step(exe, &args.iter().map(|a| a.as_os_str()).collect::<Vec<_>>(), &log, "classifier pretraining", None)?;
        }
        if !ticket.join(crate::lottery::imp::SUMMARY).exists() {
            let mut args: Vec<std::ffi::OsString> = vec![os("imp")];
            if ticket.join("run.json").exists() {
                args.extend([os("--resume"), ticket.clone().into()]);
            } else {
                args.extend([
                    cls.into(),
                    os("--trained"),
                    pre.join("model.onnx").into(),
                    os("--classify"),
                    data.into(),
                    os("--val-classify"),
                    val.into(),
                ]);
                args.extend([os("--sparsity"), os("0.8"), os("--rewind"), os("none"), os("--max-map-drop"), os("1")]);
                args.extend(schedule(t.cls_ticket_steps));
                args.extend(common.clone());
                args.extend([os("-o"), ticket.clone().into()]);
            }
            step(exe, &args.iter().map(|a| a.as_os_str()).collect::<Vec<_>>(), &log, "classifier ticket (imp)", IMP_NO_TICKET)?;
        }
        let (cls_model, cls_masks) = (ticket.join("level_1/model.onnx"), ticket.join("level_1/masks.safetensors"));
        let p = Prepared {
            seed,
            pretrained: d.join("det_pretrained.onnx"),
            tt: (d.join("det_tt.onnx"), d.join("det_tt.safetensors")),
            mt: (d.join("det_mt.onnx"), d.join("det_mt.safetensors")),
        };
        let builds: [(&Path, &Path, Option<&Path>, &str); 3] = [
            (&pre.join("model.onnx"), &p.pretrained, None, "transfer: pretrained backbone"),
            (&cls_model, &p.tt.0, Some(&p.tt.1), "transfer: transfer ticket"),
            (&pre.join("model.onnx"), &p.mt.0, Some(&p.mt.1), "transfer: mask transfer"),
        ];
        for (from, to, masks_out, what) in builds {
            if to.exists() {
                continue;
            }
            let mut args: Vec<&std::ffi::OsStr> =
                vec!["transfer".as_ref(), from.as_os_str(), detector.as_os_str(), "-o".as_ref(), to.as_os_str()];
            if let Some(m) = masks_out {
                args.extend(["--masks".as_ref(), cls_masks.as_os_str(), "--masks-out".as_ref(), m.as_os_str()]);
            }
            step(exe, &args, &log, what, None)?;
        }
        out.push(p);
    }
    Ok(out)
}

/// The study's spec: per seed, direct pruning of the backbone (rewound to the pretrained weights), late
/// resetting (to 5% of dense training), the transfer ticket and the mask transfer.
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
    let late = (steps * 5 / 100).max(1);
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

/// Prepares the seeds' detectors and returns the study's spec.
pub(crate) fn transfer_study(
    t: &TransferArgs,
    models: &[PathBuf],
    seeds: &[u64],
    fixed: &[(String, String)],
    steps: u64,
    sparsity: f64,
    dir: &Path,
) -> Result<String> {
    let [detector] = models else {
        return Err(Error::Input(format!("study transfer takes one MODEL, the detector ({} given)", models.len())));
    };
    if seeds.is_empty() {
        return Err(Error::Input("--seeds is empty: give at least one seed".into()));
    }
    let exe = std::env::current_exe().map_err(|e| Error::Runtime(format!("cannot find the ticket binary: {e}")))?;
    let threads = fixed.iter().find(|(k, _)| k == "threads").map(|(_, v)| v.as_str());
    let detector = std::path::absolute(detector).map_err(|e| Error::io(detector, e))?;
    let prep = prepare(t, &detector, seeds, threads, dir, &exe)?;
    Ok(spec(&prep, fixed, steps, sparsity))
}
