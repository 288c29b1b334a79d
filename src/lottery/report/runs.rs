//! IMP run folders as `ticket report` reads them: `run.json` (ImpConfig), each `level_L/metrics.json` (the
//! level's row, its COCO reports, its prune report, level 0's early-bird report) and `level_L/log.jsonl`
//! (training steps). Runs are grouped into replicates: identical settings except the seed.
//!
//! The reports and the prune report are read through small views that name only the fields plotted, so the
//! files written by `ticket imp` (serialise-only types) stay the one definition of the format.
use crate::error::{Context, Error, Result};
use crate::lottery::early_bird::EarlyBirdReport;
use crate::lottery::level::{self, LevelRow};
use crate::lottery::ImpConfig;
use crate::train::log::StepRecord;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Bounds on what is read: a metrics file holds per-category rows, a log one line per step.
const METRICS_MAX: u64 = 64 << 20;
const LOG_MAX: u64 = 256 << 20;

/// Per object size AP of one report (`small`, `medium`, `large`, and `all`).
#[derive(Clone, Debug, Deserialize)]
pub struct SizeView {
    pub area: String,
    pub ap: Option<f64>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct CategoryView {
    pub id: u64,
    pub name: String,
    pub ap: Option<f64>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct TideView {
    /// Error type (`Cls`, `Loc`, `Both`, `Dupe`, `Bkg`, `Miss`, `FP`, `FN`) → AP50 gained by fixing it.
    pub delta_ap: BTreeMap<String, f64>,
}

/// What the report uses of one COCO evaluation report.
#[derive(Clone, Debug, Deserialize)]
pub struct CocoView {
    pub iou_type: String,
    pub per_category: Vec<CategoryView>,
    pub per_size: Vec<SizeView>,
    pub tide: Option<TideView>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct TensorView {
    pub name: String,
    pub group: String,
    pub numel: usize,
    pub kept: usize,
}

#[derive(Clone, Debug, Deserialize)]
pub struct PruneView {
    pub tensors: Vec<TensorView>,
}

/// One finished level.
#[derive(Clone, Debug)]
pub struct LevelData {
    pub row: LevelRow,
    /// COCO reports, one per IoU type (none for a VOC validation set, whose row holds AP50).
    pub reports: Vec<CocoView>,
    pub prune: Option<PruneView>,
    pub early_bird: Option<EarlyBirdReport>,
    /// (step, loss) of the level's training, the last record of each step (a resumed run may repeat one).
    pub loss: Vec<(u64, f64)>,
    /// Validation scores over the level's training steps (`ticket imp --val-every`); empty without.
    pub val: Vec<crate::lottery::imp::val_curve::CurvePoint>,
}

impl LevelData {
    pub fn report(&self, iou_type: &str) -> Option<&CocoView> {
        self.reports.iter().find(|r| r.iou_type == iou_type)
    }
}

/// One run folder, every level of it finished.
#[derive(Clone, Debug)]
pub struct RunData {
    pub dir: PathBuf,
    pub config: ImpConfig,
    /// The architecture's fingerprint (parameter names and shapes of the initial model): runs of one
    /// architecture initialised with different seeds are replicates; runs of different architectures are not.
    pub arch: String,
    /// The initial model's file name, as the first run read with the same model bytes named it: variants of one
    /// architecture (a pretrained backbone, a transferred ticket) are told apart by name, while a copy of the
    /// same initial weights under another name is the same model.
    pub model_name: String,
    /// The initial model's parameter count (None when it cannot be read any more): an architecture in words.
    pub params: Option<u64>,
    pub levels: Vec<LevelData>,
    /// The level `ticket imp` chose (summary.json), if the run wrote its summary and one level met the gate.
    pub ticket_level: Option<usize>,
}

impl RunData {
    pub fn seed(&self) -> u64 {
        self.config.train.seed
    }

    /// The level whose ticket the per-layer, per-size, per-category and TIDE plots show: the one `ticket imp`
    /// chose, else the sparsest.
    pub fn shown_level(&self) -> usize {
        self.ticket_level.unwrap_or(self.levels.len() - 1)
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path, max: u64, what: &str) -> Result<T> {
    let bytes = crate::fsio::read_limited(path, max)?;
    serde_json::from_slice(&bytes).with_context(path, || format!("not {what}"))
}

/// Reads a run folder; a level that is missing or unfinished is an error naming it. Its `arch` is filled by
/// [`read_runs`].
fn read_run(dir: &Path) -> Result<RunData> {
    if !dir.is_dir() {
        return Err(Error::input(dir, "not a run folder (ticket imp … -o RUN_DIR)"));
    }
    let run_json = dir.join("run.json");
    if !run_json.is_file() {
        return Err(Error::input(dir, "has no run.json: not an IMP run folder (ticket imp … -o RUN_DIR)"));
    }
    let config: ImpConfig = read_json(&run_json, 16 << 20, "an IMP run file")?;
    // Read, not trusted: `rounds` sizes what is read below.
    config.validate().context(&run_json, "holds settings a run cannot have")?;
    let mut levels = Vec::with_capacity(config.rounds + 1);
    for r in 0..=config.rounds {
        let ldir = level::dir(dir, r);
        let metrics = ldir.join(level::METRICS);
        if !metrics.is_file() {
            return Err(Error::input(
                dir,
                format!(
                    "level_{r} is missing ({} not found; the run has {} rounds): finish it with ticket imp --resume",
                    metrics.display(),
                    config.rounds
                ),
            ));
        }
        #[derive(Deserialize)]
        struct File {
            row: LevelRow,
            reports: serde_json::Value,
            prune: Option<PruneView>,
            early_bird: Option<EarlyBirdReport>,
        }
        let f: File = read_json(&metrics, METRICS_MAX, "a level metrics file")?;
        if f.row.level != r {
            return Err(Error::input(&metrics, format!("holds level {}, expected {r}", f.row.level)));
        }
        f.row.check().at(&metrics)?;
        // COCO validation: a list of reports; VOC: one VOC report, which has no per-size rows or TIDE.
        let reports = match f.reports {
            serde_json::Value::Array(_) => serde_json::from_value(f.reports).context(&metrics, "reports")?,
            _ => Vec::new(),
        };
        let loss = read_loss(&ldir.join("log.jsonl"))?;
        let val = crate::lottery::imp::val_curve::read(&ldir)?;
        levels.push(LevelData { row: f.row, reports, prune: f.prune, early_bird: f.early_bird, loss, val });
    }
    let summary = dir.join(crate::lottery::imp::SUMMARY);
    let ticket_level = if summary.is_file() {
        let v: serde_json::Value = read_json(&summary, 16 << 20, "an IMP summary")?;
        v["ticket_level"].as_u64().map(|l| l as usize).filter(|&l| l < levels.len())
    } else {
        None
    };
    Ok(RunData { dir: dir.to_path_buf(), config, levels, ticket_level, arch: String::new(), model_name: String::new(), params: None })
}

/// Reads run folders and fingerprints their architectures, each initial model once (replicates and methods share
/// model files, and importing one is the costly part of reading a run).
pub fn read_runs(dirs: &[PathBuf]) -> Result<Vec<RunData>> {
    let mut runs = dirs.iter().map(|d| read_run(d)).collect::<Result<Vec<_>>>()?;
    identify_models(&mut runs);
    Ok(runs)
}

/// Sets each run's architecture and model name ([`RunData::arch`], [`RunData::model_name`]).
fn identify_models(runs: &mut [RunData]) {
    let mut known: BTreeMap<String, (String, Option<u64>)> = BTreeMap::new();
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    for r in runs.iter_mut() {
        (r.arch, r.params) = known.entry(r.config.model_fingerprint.clone()).or_insert_with(|| arch_fingerprint(&r.config)).clone();
        let name = || r.config.model.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        r.model_name = names.entry(r.config.model_fingerprint.clone()).or_insert_with(name).clone();
    }
}

/// FNV-1a of the initial model's parameter names and shapes, and its parameter count; the file's own
/// fingerprint and no count when it cannot be read any more (moved since the run).
fn arch_fingerprint(c: &ImpConfig) -> (String, Option<u64>) {
    use crate::fsio::{fnv1a, FNV_OFFSET};
    match crate::model::ModelState::import(&c.model) {
        Ok(state) => {
            let mut h = FNV_OFFSET;
            let mut params = 0u64;
            for t in &state.weights.tensors {
                h = fnv1a(h, format!("{}:{:?};", t.name, t.shape).as_bytes());
                params += t.shape.iter().product::<usize>() as u64;
            }
            (format!("arch-{h:016x}"), Some(params))
        }
        Err(_) => (c.model_fingerprint.clone(), None),
    }
}

/// An architecture in words, by its size: `0.52 M parameters` (what a legend can say of a fingerprint).
pub fn arch_words(params: Option<u64>, arch: &str) -> String {
    match params {
        Some(p) if p >= 100_000 => format!("{:.2} M parameters", p as f64 / 1e6),
        Some(p) => format!("{p} parameters"),
        None => format!("model {arch}"),
    }
}

/// A level's training losses; no log (a `--trained` dense level) is no curve.
fn read_loss(path: &Path) -> Result<Vec<(u64, f64)>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let records: Vec<StepRecord> = crate::fsio::read_jsonl(path, LOG_MAX, "a training step record")?;
    // The last record of each step: a resumed run may repeat one.
    let by_step: BTreeMap<u64, f64> = records.into_iter().map(|r| (r.step, r.loss as f64)).collect();
    Ok(by_step.into_iter().collect())
}

/// Replicates: runs whose settings are identical except the seed (and where files were named from).
#[derive(Clone, Debug)]
pub struct Group {
    /// The settings that tell this group from the others (`scope=layer, rewind=none`), or the main ones when
    /// there is one group.
    pub label: String,
    /// The method in words (`one-shot global`, `random re-init`), as the figures' legends name it; unique among
    /// the groups ([`method_names`]).
    pub method: String,
    /// The architecture's fingerprint ([`RunData::arch`]).
    pub arch: String,
    pub runs: Vec<RunData>,
}

/// The settings of a run as flat `key=value` pairs, without what differs between replicates: the seed, the
/// checkpoint cadence, device and threads, and file paths (a model is known by its fingerprint).
fn settings(run: &RunData) -> BTreeMap<String, String> {
    let c = &run.config;
    let mut v = serde_json::to_value(c).expect("serialises");
    // Models are told apart by architecture: the initial weights' own fingerprints differ between seeds.
    for (obj, key) in [
        (None, "model"),
        (None, "model_fingerprint"),
        (None, "trained_fingerprint"),
        (None, "trained"),
        (None, "threads"),
        (Some("train"), "seed"),
        (Some("train"), "save_every"),
        (Some("train"), "device"),
        (Some("train"), "model"),
        (Some("train"), "model_fingerprint"),
        (Some("train"), "masks"),
    ] {
        let target = match obj {
            Some(o) => v.get_mut(o),
            None => Some(&mut v),
        };
        if let Some(serde_json::Value::Object(m)) = target {
            m.remove(key);
        }
    }
    // One key for every rewind (serde writes a step as an object, which would flatten to another key).
    if let serde_json::Value::Object(m) = &mut v {
        m.insert("rewind".into(), serde_json::Value::String(c.rewind.as_arg()));
        m.insert("arch".into(), serde_json::Value::String(run.arch.clone()));
        // The initial model's name ([`RunData::model_name`]): variants of one architecture are told apart by
        // it, while replicates keep one name in per-seed folders.
        m.insert("model_name".into(), serde_json::Value::String(run.model_name.clone()));
        // A given mask is a method (a transferred or early-bird ticket); its path differs between replicates.
        if c.masks_from.is_some() {
            m.insert("masks_from".into(), serde_json::Value::String("given".into()));
        }
    }
    let mut out = BTreeMap::new();
    flatten("", &v, &mut out);
    out
}

fn flatten(prefix: &str, v: &serde_json::Value, out: &mut BTreeMap<String, String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(&key, x, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

/// The settings that make one method differ from another (as opposed to its schedule).
const METHOD_KEYS: &[&str] = &[
    "arch",
    "model_name",
    "structure",
    "sparsity",
    "rounds",
    "scope",
    "rewind",
    "modules",
    "min_layer_density",
    "masks_from",
    "early_bird",
    "importance",
    "round_to",
    "trained",
    "mask",
    "floor_on",
];

/// Groups runs into replicates, in the order of their first run. The label names what differs between groups.
pub fn group_runs(runs: Vec<RunData>) -> Vec<Group> {
    let mut keyed: Vec<(BTreeMap<String, String>, Vec<RunData>)> = Vec::new();
    for run in runs {
        let key = settings(&run);
        match keyed.iter_mut().find(|(k, _)| *k == key) {
            Some((_, g)) => g.push(run),
            None => keyed.push((key, vec![run])),
        }
    }
    let all_keys: std::collections::BTreeSet<&String> = keyed.iter().flat_map(|(k, _)| k.keys()).collect();
    let mut differing: Vec<String> = match keyed.first() {
        Some((first, _)) => all_keys.into_iter().filter(|k| keyed.iter().any(|(o, _)| o.get(*k) != first.get(*k))).cloned().collect(),
        None => Vec::new(),
    };
    // Label by what the method changes when that tells the groups apart; the schedule keys that follow from it
    // (steps, warmup, decay points of a shorter fine-tuning) only when it does not.
    let method: Vec<String> = differing.iter().filter(|k| METHOD_KEYS.contains(&k.as_str())).cloned().collect();
    let distinct = |keys: &[String]| {
        let labels: std::collections::BTreeSet<Vec<Option<&String>>> =
            keyed.iter().map(|(k, _)| keys.iter().map(|x| k.get(x)).collect()).collect();
        labels.len() == keyed.len()
    };
    if !method.is_empty() && distinct(&method) {
        differing = method;
    }
    let mut groups: Vec<Group> = keyed
        .into_iter()
        .map(|(key, runs)| {
            let shown: Vec<String> = if differing.is_empty() {
                ["sparsity", "rounds", "scope", "rewind"]
                    .iter()
                    .filter_map(|k| key.get(*k).map(|v| format!("{k}={}", v.trim_matches('"'))))
                    .collect()
            } else {
                differing.iter().map(|k| format!("{}={}", k.trim_start_matches("train."), shown_value(k, key.get(k)))).collect()
            };
            let arch = runs[0].arch.clone();
            Group { label: shown.join(", "), method: String::new(), arch, runs }
        })
        .collect();
    // A legend names an architecture by its size, not by its fingerprint.
    let keys: Vec<BTreeMap<String, String>> = groups
        .iter()
        .map(|g| {
            let mut k = settings(&g.runs[0]);
            k.insert("arch".into(), arch_words(g.runs[0].params, &g.arch));
            k
        })
        .collect();
    let names = method_names(groups.iter().map(|g| method_name(&g.runs[0].config)).collect(), &keys);
    for (g, name) in groups.iter_mut().zip(names) {
        g.method = name;
    }
    groups
}

/// A run's method in words: the kind of ticket (one-shot global or layer-wise, with a floor, iterative, channel,
/// from a given mask), or the baseline or control it is (prune + fine-tune, random re-init, random mask).
pub fn method_name(c: &ImpConfig) -> String {
    use crate::lottery::{MaskSource, Rewind};
    use crate::prune::{Scope, Structure};
    let mut kind = match (c.structure, &c.masks_from, c.rounds, c.scope) {
        (Structure::Channel, ..) => "channel".to_string(),
        (_, Some(_), ..) => "given mask".into(),
        // A floor is a variant of global ranking: "one-shot with floor".
        (_, None, 1, Scope::Global) if c.min_layer_density.is_some() => "one-shot".into(),
        (_, None, 1, Scope::Global) => "one-shot global".into(),
        (_, None, 1, Scope::Layer) => "one-shot layer-wise".into(),
        (_, None, k, Scope::Global) => format!("iterative ({k} levels)"),
        (_, None, k, Scope::Layer) => format!("iterative layer-wise ({k} levels)"),
    };
    if c.min_layer_density.is_some() {
        kind += " with floor";
        if let Some(on) = &c.floor_on {
            kind += &format!(" on {}", on.join(", "));
        }
    }
    let mut controls: Vec<String> = Vec::new();
    if c.mask == MaskSource::Random {
        controls.push("random mask".into());
    }
    match c.rewind {
        Rewind::Init => {}
        Rewind::Step(k) => kind += &format!(", late reset to step {k}"),
        Rewind::None => controls.push("prune + fine-tune".into()),
        Rewind::Random => controls.push("random re-init".into()),
    }
    // A control names itself; the ticket it controls is told by a suffix where two would share the name.
    if controls.is_empty() {
        kind
    } else {
        controls.join(", ")
    }
}

/// Each group's method name made unique: groups whose names collide get the settings that tell them apart
/// (`one-shot global (sparsity 0.5)`), the method's own settings where those suffice.
fn method_names(names: Vec<String>, keys: &[BTreeMap<String, String>]) -> Vec<String> {
    let mut out = names.clone();
    for (i, name) in names.iter().enumerate() {
        let same: Vec<usize> = (0..names.len()).filter(|&j| names[j] == *name).collect();
        if same.len() < 2 {
            continue;
        }
        let all: std::collections::BTreeSet<&String> = same.iter().flat_map(|&j| keys[j].keys()).collect();
        let differing: Vec<&String> = all.into_iter().filter(|k| same.iter().any(|&j| keys[j].get(*k) != keys[same[0]].get(*k))).collect();
        let method: Vec<&String> = differing.iter().copied().filter(|k| METHOD_KEYS.contains(&k.as_str())).collect();
        let tells = |ks: &[&String]| {
            same.iter().map(|&j| ks.iter().map(|k| keys[j].get(*k)).collect::<Vec<_>>()).collect::<std::collections::BTreeSet<_>>().len()
                == same.len()
        };
        let shown = if !method.is_empty() && tells(&method) { method } else { differing };
        let suffix: Vec<String> = shown
            .iter()
            // Of an architecture and a model name, the one that tells the groups apart alone (the size first).
            .filter(|k| {
                let alone = |key: &str| shown.iter().any(|x| x.as_str() == key) && tells(&[&key.to_string()]);
                match k.as_str() {
                    "model_name" => !alone("arch"),
                    "arch" => alone("arch") || !alone("model_name"),
                    _ => true,
                }
            })
            .map(|k| match k.as_str() {
                "arch" => keys[i].get(*k).cloned().unwrap_or_default(),
                _ => format!("{} {}", k.trim_start_matches("train.").replace('_', " "), shown_value(k, keys[i].get(*k))),
            })
            .collect();
        out[i] = format!("{name} ({})", suffix.join(", "));
    }
    // Settings identical but for what a group key leaves out cannot happen; numbered all the same if it did.
    for i in 0..out.len() {
        if out[..i].contains(&out[i]) {
            out[i] = format!("{} #{}", out[i], i);
        }
    }
    out
}

/// A setting's value in a label: `base+fpn` for a list, `all` for modules left unset (every module is pruned),
/// `none` for any other unset setting.
fn shown_value(key: &str, v: Option<&String>) -> String {
    match v.map(String::as_str) {
        None => "-".into(),
        Some("null") if key == "modules" => "all".into(),
        Some("null") => "none".into(),
        Some(v) => match serde_json::from_str::<Vec<String>>(v) {
            Ok(list) => list.join("+"),
            Err(_) => v.trim_matches('"').to_string(),
        },
    }
}

/// Mean and sample standard deviation (0 for one value).
pub fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    if v.is_empty() {
        return (f64::NAN, 0.0);
    }
    let mean = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 { v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    (mean, var.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn methods_are_named_in_words_and_never_share_a_label() {
        // The one-shot ticket and prune + fine-tune differ in rewind (and the fine-tuning's schedule): each names
        // its method; two one-shot tickets at two sparsities get the sparsity that tells them apart.
        let names = vec!["one-shot global".to_string(), "prune + fine-tune".into(), "one-shot global".into(), "random re-init".into()];
        let k = [
            keys(&[("sparsity", "0.8"), ("rewind", "\"init\""), ("train.steps", "100")]),
            keys(&[("sparsity", "0.8"), ("rewind", "\"none\""), ("train.steps", "50")]),
            keys(&[("sparsity", "0.5"), ("rewind", "\"init\""), ("train.steps", "100")]),
            keys(&[("sparsity", "0.8"), ("rewind", "\"random\""), ("train.steps", "100")]),
        ];
        let out = method_names(names, &k);
        assert_eq!(out, ["one-shot global (sparsity 0.8)", "prune + fine-tune", "one-shot global (sparsity 0.5)", "random re-init"]);
        // Only a schedule key tells two apart: that one is named.
        let out = method_names(
            vec!["iterative (3 levels)".into(), "iterative (3 levels)".into()],
            &[keys(&[("train.steps", "100"), ("modules", "null")]), keys(&[("train.steps", "200"), ("modules", "null")])],
        );
        assert_eq!(out, ["iterative (3 levels) (steps 100)", "iterative (3 levels) (steps 200)"]);
        for o in &out {
            assert!(!o.contains('='), "a settings string: {o}");
        }
    }

    #[test]
    fn module_sets_are_labelled_by_their_modules() {
        // The modules study: tickets that differ only in which modules are pruned; unset means every module.
        let out = method_names(
            vec!["one-shot with floor".into(), "one-shot with floor".into()],
            &[keys(&[("modules", r#"["base","fpn"]"#)]), keys(&[("modules", "null")])],
        );
        assert_eq!(out, ["one-shot with floor (modules base+fpn)", "one-shot with floor (modules all)"]);
    }

    #[test]
    fn a_copy_of_the_initial_model_under_another_name_is_the_same_model() {
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/train/maskrcnn_r18_fpn_synth.onnx");
        let dir = std::env::temp_dir().join(format!("ticket-model-names-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let copy = dir.join("init.onnx");
        std::fs::copy(&fixture, &copy).unwrap();
        let data = crate::data::DataSpec::coco(Path::new("train.json"), None);
        let s = crate::lottery::ImpSettings { sparsity: Some(0.8), ..Default::default() };
        let run = |m: &Path| RunData {
            dir: dir.clone(),
            config: ImpConfig::new(m, data.clone(), data.clone(), &s).unwrap(),
            arch: String::new(),
            model_name: String::new(),
            params: None,
            levels: Vec::new(),
            ticket_level: None,
        };
        let mut runs = vec![run(&fixture), run(&copy)];
        identify_models(&mut runs);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!([runs[0].model_name.as_str(), runs[1].model_name.as_str()], ["maskrcnn_r18_fpn_synth.onnx"; 2]);
        assert_eq!(group_runs(runs).len(), 1, "one model under two names made two methods");
    }

    #[test]
    fn each_method_and_control_has_its_words() {
        use crate::lottery::{ImpSettings, MaskSource, Rewind};
        let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/train/maskrcnn_r18_fpn_synth.onnx");
        let data = crate::data::DataSpec::coco(Path::new("train.json"), None);
        let name = |s: ImpSettings| {
            let s = ImpSettings { sparsity: Some(0.8), ..s };
            method_name(&ImpConfig::new(&model, data.clone(), data.clone(), &s).unwrap())
        };
        let d = ImpSettings::default;
        assert_eq!(name(d()), "one-shot global");
        assert_eq!(name(ImpSettings { min_layer_density: Some(0.05), ..d() }), "one-shot with floor");
        let on = Some(vec!["rpn.head.conv".to_string()]);
        assert_eq!(name(ImpSettings { min_layer_density: Some(0.05), floor_on: on, ..d() }), "one-shot with floor on rpn.head.conv");
        assert_eq!(name(ImpSettings { rounds: 3, ..d() }), "iterative (3 levels)");
        assert_eq!(name(ImpSettings { structure: crate::prune::Structure::Channel, ..d() }), "channel");
        assert_eq!(name(ImpSettings { rewind: Rewind::None, ..d() }), "prune + fine-tune");
        assert_eq!(name(ImpSettings { rewind: Rewind::Random, ..d() }), "random re-init");
        assert_eq!(name(ImpSettings { mask: MaskSource::Random, ..d() }), "random mask");
        assert_eq!(name(ImpSettings { rewind: Rewind::Step(5), ..d() }), "one-shot global, late reset to step 5");
    }
}
