//! An IMP run from named settings, as a sweep's cell gives them (`sparsity = "0.8"`, `val-coco = PATH`): the
//! names are `ticket imp`'s options, the values as its command line spells them. The values are parsed and the
//! run checked here, by the library's own validation, so a cell is refused for the reasons `ticket imp` would
//! refuse it, before anything runs.
use super::{ImpConfig, ImpSettings};
use crate::data::DataSpec;
use crate::error::Error;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::str::FromStr;

/// What the named settings give besides [`ImpSettings`]: the model and where the data are.
#[derive(Default)]
struct Named {
    model: Option<PathBuf>,
    coco: Option<PathBuf>,
    images: Option<PathBuf>,
    voc: Option<PathBuf>,
    classify: Option<PathBuf>,
    unlabeled: Option<PathBuf>,
    val_coco: Option<PathBuf>,
    val_images: Option<PathBuf>,
    val_voc: Option<PathBuf>,
    val_classify: Option<PathBuf>,
    settings: ImpSettings,
}

/// The run `settings` define (each by its option name; `model` for the initial weights), checked as a new run's
/// settings are, with the files it names: the first problem, one line, naming settings as the cell does.
pub fn check_settings(settings: &BTreeMap<String, String>) -> Result<ImpConfig, String> {
    let mut n = Named::default();
    for (key, value) in settings {
        // `key` is the cell's own: `ticket imp`'s option, as the task's command line will spell it.
        n.set(key, value).map_err(|e| format!("invalid value '{value}' for --{key}: {e}"))?;
    }
    n.checked().map_err(|e| e.render_settings(as_option))
}

/// A setting as a cell names it: `ticket imp`'s option, the setting's name with dashes (`eb_every` →
/// `--eb-every`; [`Named::set`] reads the same names).
fn as_option(setting: &str) -> Option<String> {
    Some(format!("--{}", setting.replace('_', "-")))
}

impl Named {
    /// The run, checked as a new run's settings are, with the files it names.
    fn checked(&self) -> crate::error::Result<ImpConfig> {
        if self.settings.eb_every.is_some() && !self.settings.early_stop_eb {
            return Err(Error::setting("eb_every", "`eb_every` sets how often the early-bird rule is checked: it needs `early_stop_eb`"));
        }
        let model = self.model.as_deref().ok_or_else(|| Error::Input("no model: set `model` (the initial weights)".into()))?;
        let val =
            DataSpec::validation(self.val_coco.as_deref(), self.val_voc.as_deref(), self.val_classify.as_deref(), self.val_images.as_deref())
                .ok_or_else(|| {
                    Error::setting(
                        "val_coco",
                        "imp scores every level on a validation set: give `val_coco` VAL.json, `val_voc` DIR, `val_classify` DIR or `val_images` DIR alone (agreement with dense)",
                    )
                })?;
        let data = DataSpec::training(
            self.coco.as_deref(),
            self.voc.as_deref(),
            self.classify.as_deref(),
            self.images.as_deref(),
            self.unlabeled.as_deref(),
        )?;
        let config = ImpConfig::new(model, val, data, &self.settings)?;
        config.validate()?;
        // A missing dataset would fail every task; it is refused here, before the folder exists.
        config.check_files()?;
        Ok(config)
    }

    /// One named setting. The names are `ticket imp`'s options (tests/sweep.rs checks that every one is known here).
    fn set(&mut self, key: &str, v: &str) -> Result<(), String> {
        let s = &mut self.settings;
        let t = &mut s.train;
        let path = || Some(PathBuf::from(v));
        match key {
            "model" => self.model = path(),
            "coco" => self.coco = path(),
            "images" => self.images = path(),
            "voc" => self.voc = path(),
            "classify" => self.classify = path(),
            "unlabeled" => self.unlabeled = path(),
            "distill" => t.distill.terms = list(v)?,
            "teacher" => t.distill.teacher = path(),
            "distill-weight" => t.distill.weight = parse(v)?,
            "temperature" => t.distill.temperature = parse(v)?,
            "pseudo-score" => t.distill.pseudo_score = parse(v)?,
            "val-coco" => self.val_coco = path(),
            "val-images" => self.val_images = path(),
            "val-voc" => self.val_voc = path(),
            "val-classify" => self.val_classify = path(),
            "agreement-score" => s.agreement_score = parse(v)?,
            "val-every" => s.val_every = parse(v)?,
            // Where the training worker is: the machine's, not the run's.
            "train-python" => {}
            "steps" => t.steps = parse(v)?,
            "lr" => t.lr = parse(v)?,
            "optimizer" => t.optimizer = v.to_string(),
            "momentum" => t.momentum = parse(v)?,
            "weight-decay" => t.weight_decay = parse(v)?,
            "clip-grad-norm" => t.clip_grad_norm = Some(parse(v)?),
            "warmup" => t.warmup = parse(v)?,
            "decay-at" => t.decay_at = list(v)?,
            "gamma" => t.gamma = parse(v)?,
            "batch" => t.batch = parse(v)?,
            "rois" => t.rois = parse(v)?,
            "canvas" => t.canvas = Some(parse(v)?),
            "trainable-layers" => t.trainable_layers = parse(v)?,
            "flip" => t.flip = parse(v)?,
            "seed" => t.seed = parse(v)?,
            "device" => t.device = v.to_string(),
            "save-every" => t.save_every = parse(v)?,
            "threads" => s.threads = crate::runtime::threads::parse_threads(v)?,
            "sparsity" => s.sparsity = Some(parse(v)?),
            "rounds" => s.rounds = parse(v)?,
            "scope" => s.scope = named(v)?,
            "modules" => s.modules = Some(v.split(',').map(str::to_string).collect()),
            "min-layer-density" => s.min_layer_density = Some(parse(v)?),
            "structure" => s.structure = named(v)?,
            "importance" => s.importance = named(v)?,
            "round-to" => s.round_to = parse(v)?,
            "rewind" => s.rewind = parse(v)?,
            "mask" => s.mask = parse(v)?,
            "floor-on" => s.floor_on = Some(v.split(',').map(str::to_string).collect()),
            "dense-steps" => s.dense_steps = Some(parse(v)?),
            "trained" => s.trained = path(),
            "early-bird" => s.early_bird = list(v)?,
            "early-stop-eb" => s.early_stop_eb = parse(v)?,
            "eb-every" => s.eb_every = Some(parse(v)?),
            "masks-from" => s.masks_from = path(),
            "max-map-drop" => s.max_map_drop = parse(v)?,
            _ => return Err(format!("`{key}` is not a setting of an IMP run")),
        }
        Ok(())
    }
}

fn parse<T: FromStr>(v: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    v.parse().map_err(|e: T::Err| e.to_string())
}

/// A comma-separated list.
fn list<T: FromStr>(v: &str) -> Result<Vec<T>, String>
where
    T::Err: std::fmt::Display,
{
    v.split(',').map(parse).collect()
}

/// A value of a named choice (scope, structure, importance), spelled as run.json spells it.
fn named<T: serde::de::DeserializeOwned>(v: &str) -> Result<T, String> {
    serde_json::from_value(serde_json::Value::String(v.to_string())).map_err(|e| e.to_string())
}
