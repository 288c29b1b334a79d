//! The seed paper's studies as sweep specs: `ticket study NAME` writes the spec (the same TOML a user gives
//! `ticket sweep`, so a study runs on a cluster unchanged: `ticket study NAME … --print-spec > s.toml` then
//! `ticket sweep s.toml --slurm`), runs it, and reports it.
use crate::error::{Context, Error, Result};
use crate::model::{ModelState, ModuleGroup};
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// Every study, with what it varies.
pub const STUDIES: &[(&str, &str)] = &[
    ("modules", "which modules are pruned (the paper's Table 3): cumulative module subsets at the same sparsity"),
    ("rounds", "one-shot against 2, 3 and 5 IMP rounds to the same sparsity"),
    ("scope", "global against layer-wise pruning at 20-90% sparsity"),
    ("rewind", "late resetting at 0 (init), 1, 2, 5, 10, 25, 50% of dense training, and none (fine-tuning)"),
    ("early-bird", "masks drawn at 10-90% of dense training against the final mask (IoU), per seed"),
    ("controls", "the ticket against its controls: random re-initialisation and a random mask with the same per-tensor densities"),
    ("floor", "the floor ablation: plain global magnitude, the floor on every tensor, on rpn.head.conv only, on box_head.fc6 only"),
    ("width", "50/80/90% tickets of the same detector at several backbone widths (give one model per width)"),
    ("transfer", "tickets from a classifier pretrained here (transfer ticket, mask transfer) against direct pruning and late resetting"),
];

/// What every study takes from its command line.
#[derive(Clone, Debug)]
pub struct StudyInputs {
    /// The detector's initial weights; `width` takes one per width.
    pub models: Vec<PathBuf>,
    /// Fixed settings as `key = TOML value` pairs (data, schedule, anything `ticket imp` takes).
    pub fixed: Vec<(String, String)>,
    pub seeds: Vec<u64>,
    /// Dense training steps (the rewind points are fractions of it).
    pub steps: u64,
    /// The sparsity of the studies that hold it fixed (modules, rounds, rewind, early-bird).
    pub sparsity: f64,
}

/// The spec of study `name` as TOML text.
pub fn study_spec(name: &str, inp: &StudyInputs) -> Result<String> {
    let Some((_, what)) = STUDIES.iter().find(|(n, _)| *n == name) else {
        let names: Vec<&str> = STUDIES.iter().map(|(n, _)| *n).collect();
        return Err(Error::Input(format!("no study named `{name}` (studies: {})", names.join(", "))));
    };
    if inp.models.is_empty() {
        return Err(Error::Input(format!("study {name} needs the detector's initial weights (MODEL)")));
    }
    if inp.models.len() > 1 && name != "width" {
        return Err(Error::Input(format!("study {name} takes one MODEL ({} given; several are for the width study)", inp.models.len())));
    }
    if inp.seeds.is_empty() {
        return Err(Error::setting("seeds", "`seeds` is empty: give at least one seed"));
    }
    let mut s = format!("# ticket study {name}: {what}\nname = \"{}\"\n\n[fixed]\n", name.replace('-', "_"));
    let model = |p: &PathBuf| toml_str(&std::path::absolute(p).unwrap_or_else(|_| p.clone()).to_string_lossy());
    if name != "width" {
        writeln!(s, "model = {}", model(&inp.models[0])).unwrap();
    }
    writeln!(s, "steps = {}", inp.steps).unwrap();
    if !["scope", "width"].contains(&name) {
        writeln!(s, "sparsity = {}", inp.sparsity).unwrap();
    }
    if name == "early-bird" {
        s += "early-bird = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]\n";
    }
    for (k, v) in &inp.fixed {
        writeln!(s, "{k} = {v}").unwrap();
    }
    s += "\n[grid]\n";
    writeln!(s, "seed = [{}]", inp.seeds.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")).unwrap();
    match name {
        "modules" => {
            let state = ModelState::import(&inp.models[0])?;
            let present: Vec<ModuleGroup> = state.groups().into_keys().collect();
            let subsets = cumulative_modules(&present);
            if subsets.len() < 2 {
                return Err(Error::input(&inp.models[0], "has fewer than two module groups: nothing for the modules study to compare"));
            }
            let lists: Vec<String> =
                subsets.iter().map(|m| format!("[{}]", m.iter().map(|k| toml_str(k)).collect::<Vec<_>>().join(", "))).collect();
            writeln!(s, "modules = [{}]", lists.join(", ")).unwrap();
        }
        "rounds" => s += "rounds = [1, 2, 3, 5]\n",
        "scope" => s += "scope = [\"global\", \"layer\"]\nsparsity = [0.2, 0.4, 0.6, 0.8, 0.9]\n",
        "rewind" => {
            let mut points = vec![toml_str("init")];
            let mut steps_seen = Vec::new();
            for pct in [1u64, 2, 5, 10, 25, 50] {
                let k = (inp.steps * pct / 100).max(1);
                if !steps_seen.contains(&k) {
                    steps_seen.push(k);
                    points.push(toml_str(&k.to_string()));
                }
            }
            points.push(toml_str("none"));
            writeln!(s, "rewind = [{}]", points.join(", ")).unwrap();
        }
        // Its fractions are fixed above: the seeds are its grid.
        "early-bird" => {}
        // The variants set different options, so they are cells (each taken with every seed).
        "controls" => s += CONTROLS,
        "floor" => {
            let f = FLOOR.min(1.0 - inp.sparsity);
            s += "\n[[cells]]\nscope = \"global\"\n";
            for on in [None, Some("rpn.head.conv"), Some("box_head.fc6")] {
                writeln!(s, "\n[[cells]]\nmin-layer-density = {f}").unwrap();
                if let Some(on) = on {
                    writeln!(s, "floor-on = [{}]", toml_str(on)).unwrap();
                }
            }
        }
        "width" => {
            if inp.models.len() < 2 {
                return Err(Error::Input(
                    "study width compares backbone widths: give one MODEL per width (tools/export_models.py --synth W)".into(),
                ));
            }
            writeln!(s, "model = [{}]", inp.models.iter().map(model).collect::<Vec<_>>().join(", ")).unwrap();
            s += "sparsity = [0.5, 0.8, 0.9]\n";
        }
        // Its tasks start from files a preparation makes (a pretrained classifier and its ticket): the CLI
        // prepares them and writes that study's spec as cells.
        "transfer" => {
            return Err(Error::Input(
                "study transfer is prepared and run by ticket study transfer (it pretrains a classifier first)".into(),
            ))
        }
        _ => unreachable!("every study in STUDIES has a grid"),
    }
    Ok(s)
}

/// The controls study's cells: the ticket (rewound to init), the random re-initialisation, the random mask.
const CONTROLS: &str = "\n[[cells]]\nrewind = \"init\"\n\n[[cells]]\nrewind = \"random\"\n\n[[cells]]\nmask = \"random\"\n";
/// The floor study's density floor (at most what the sparsity leaves).
const FLOOR: f64 = 0.05;

/// The paper's Table 3 adds modules from the input upwards: Base, Base+FPN, …, everything. Only groups the
/// model has; the predictor goes with the box head (the paper's "Box+Cls head").
fn cumulative_modules(present: &[ModuleGroup]) -> Vec<Vec<String>> {
    let order: &[&[ModuleGroup]] = &[
        &[ModuleGroup::Base],
        &[ModuleGroup::Top],
        &[ModuleGroup::Fpn],
        &[ModuleGroup::Rpn],
        &[ModuleGroup::BoxHead, ModuleGroup::BoxPredictor],
        &[ModuleGroup::MaskHead],
        &[ModuleGroup::KeypointHead],
        &[ModuleGroup::Fc],
    ];
    let mut out = Vec::new();
    let mut acc: Vec<String> = Vec::new();
    for step in order {
        let have: Vec<String> = step.iter().filter(|g| present.contains(g)).map(ModuleGroup::key).collect();
        if have.is_empty() {
            continue;
        }
        acc.extend(have);
        out.push(acc.clone());
    }
    out
}

/// A TOML basic string: JSON's string escapes (\\, \", \n, \uXXXX, …) are all TOML's too.
pub fn toml_str(s: &str) -> String {
    serde_json::to_string(s).expect("a string serialises")
}

/// `ticket study`'s report: the spec written, the sweep's folder and tasks, those that failed, and the report
/// over the finished ones.
#[derive(serde::Serialize)]
pub struct StudyReport {
    pub study: String,
    pub spec: PathBuf,
    pub sweep_dir: PathBuf,
    pub tasks: usize,
    pub failed: Vec<usize>,
    pub report: Option<crate::lottery::report::ImpReport>,
}

/// A study's fixed settings as `key = TOML value` pairs: the training and validation data (absolute paths), and
/// every `KEY=VALUE` of `set` (a TOML value, or a bare word taken as a string: `scope=layer`).
pub fn fixed_settings(coco: Option<&Path>, val_coco: Option<&Path>, set: &[String]) -> Result<Vec<(String, String)>> {
    let mut fixed = Vec::new();
    for (key, path) in [("coco", coco), ("val-coco", val_coco)] {
        if let Some(p) = path {
            fixed.push((key.to_string(), toml_str(&std::path::absolute(p).at(p)?.to_string_lossy())));
        }
    }
    for kv in set {
        let (k, v) = kv.split_once('=').ok_or_else(|| Error::setting("set", format!("`set` {kv}: give KEY=VALUE")))?;
        let value = if toml::from_str::<toml::Table>(&format!("x = {v}")).is_ok() { v.to_string() } else { toml_str(v) };
        fixed.push((k.trim().to_string(), value));
    }
    Ok(fixed)
}
